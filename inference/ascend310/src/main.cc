// Ascend 310 runner: loads a PSPNet MINDIR and runs it on every preprocessed input file.
//
// Contract (see src/evaluation/offline.py): each file in --input_dir is raw float32 of the
// model's input shape (batch x 3 x crop_h x crop_w); for "x.bin" the logits are written to
// --output_dir as "x_0.bin" (raw float32, batch x classes x crop_h x crop_w).
//
// Usage: pspnet_310 --mindir_path=pspnet50.mindir --input_dir=WORK/input --output_dir=WORK/output
//                   [--device_id=0]
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/serialization.h"
#include "include/api/types.h"

using mindspore::AscendDeviceInfo;
using mindspore::Context;
using mindspore::Graph;
using mindspore::GraphCell;
using mindspore::Model;
using mindspore::ModelType;
using mindspore::MSTensor;
using mindspore::Serialization;
using mindspore::Status;

namespace {

std::map<std::string, std::string> ParseArgs(int argc, char **argv) {
  std::map<std::string, std::string> args = {{"device_id", "0"}};
  for (int i = 1; i < argc; ++i) {
    std::string arg(argv[i]);
    if (arg.rfind("--", 0) != 0 || arg.find('=') == std::string::npos) {
      std::cerr << "bad argument '" << arg << "' (expected --key=value)" << std::endl;
      std::exit(2);
    }
    auto eq = arg.find('=');
    args[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
  }
  for (const char *key : {"mindir_path", "input_dir", "output_dir"}) {
    if (args.find(key) == args.end()) {
      std::cerr << "missing --" << key << "=...\nusage: pspnet_310 --mindir_path=M --input_dir=I "
                << "--output_dir=O [--device_id=0]" << std::endl;
      std::exit(2);
    }
  }
  return args;
}

std::vector<std::string> ListBinFiles(const std::string &dir) {
  std::vector<std::string> names;
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) {
    std::cerr << "cannot open input folder " << dir << std::endl;
    std::exit(1);
  }
  while (dirent *e = readdir(d)) {
    std::string name(e->d_name);
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".bin") == 0) names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool ReadFile(const std::string &path, std::vector<char> *data) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return false;
  std::streamsize size = f.tellg();
  f.seekg(0, std::ios::beg);
  data->resize(static_cast<size_t>(size));
  return static_cast<bool>(f.read(data->data(), size));
}

}  // namespace

int main(int argc, char **argv) {
  auto args = ParseArgs(argc, argv);
  auto context = std::make_shared<Context>();
  auto ascend = std::make_shared<AscendDeviceInfo>();
  ascend->SetDeviceID(std::stoi(args["device_id"]));
  context->MutableDeviceInfo().push_back(ascend);

  Graph graph;
  Status ret = Serialization::Load(args["mindir_path"], ModelType::kMindIR, &graph);
  if (ret != mindspore::kSuccess) {
    std::cerr << "cannot load MINDIR " << args["mindir_path"] << std::endl;
    return 1;
  }
  Model model;
  ret = model.Build(GraphCell(graph), context);
  if (ret != mindspore::kSuccess) {
    std::cerr << "model build failed on device " << args["device_id"] << std::endl;
    return 1;
  }
  std::vector<MSTensor> model_inputs = model.GetInputs();
  if (model_inputs.size() != 1) {
    std::cerr << "expected a model with one input, found " << model_inputs.size() << std::endl;
    return 1;
  }
  const MSTensor &in_desc = model_inputs[0];
  mkdir(args["output_dir"].c_str(), 0755);

  auto files = ListBinFiles(args["input_dir"]);
  double total_ms = 0;
  std::vector<char> buffer;
  for (const auto &name : files) {
    std::string in_path = args["input_dir"] + "/" + name;
    if (!ReadFile(in_path, &buffer) || buffer.size() != static_cast<size_t>(in_desc.DataSize())) {
      std::cerr << in_path << ": size " << buffer.size() << " bytes, model input needs " << in_desc.DataSize()
                << std::endl;
      return 1;
    }
    std::vector<MSTensor> inputs = {MSTensor(in_desc.Name(), in_desc.DataType(), in_desc.Shape(), buffer.data(),
                                             buffer.size())};
    std::vector<MSTensor> outputs;
    auto start = std::chrono::steady_clock::now();
    ret = model.Predict(inputs, &outputs);
    total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (ret != mindspore::kSuccess || outputs.empty()) {
      std::cerr << "predict failed for " << in_path << std::endl;
      return 1;
    }
    std::string out_path = args["output_dir"] + "/" + name.substr(0, name.size() - 4) + "_0.bin";
    std::ofstream out(out_path, std::ios::binary);
    auto data = outputs[0].Data();
    out.write(reinterpret_cast<const char *>(data.get()), static_cast<std::streamsize>(outputs[0].DataSize()));
    if (!out) {
      std::cerr << "cannot write " << out_path << std::endl;
      return 1;
    }
  }
  std::cout << "processed " << files.size() << " files, mean " << (files.empty() ? 0 : total_ms / files.size())
            << " ms per batch" << std::endl;
  return 0;
}
