// Ascend 310 runner on MindSpore Lite: loads a PSPNet MINDIR and runs it on every preprocessed input file.
//
// MindSpore >= 2.2 ships no C++ inference library in its main package; on the 310 the C++ runtime is
// MindSpore Lite, whose working entry point is Model::Build(path, ModelType::kMindIR, context).
//
// File contract (the same as inference/run.py and src/evaluation/offline.py): each "x.bin" in
// --input_dir is raw float32 of the model's input shape (batch x 3 x crop_h x crop_w); the logits
// are written to --output_dir as "x_0.bin" (raw float32, batch x classes x crop_h x crop_w).
//
// Usage: pspnet_310 --mindir_path=pspnet50.mindir --input_dir=WORK/input --output_dir=WORK/output
//                   [--device_id=0] [--device=ascend|cpu]
// Exit status: 0 done, 1 a model or file error (one line naming it), 2 bad arguments.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
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
#include "include/api/status.h"
#include "include/api/types.h"

namespace {

constexpr const char kUsage[] =
    "usage: pspnet_310 --mindir_path=M --input_dir=I --output_dir=O [--device_id=0] [--device=ascend|cpu]";

int Fail(const std::string &message) {
  std::cerr << "error: " << message << std::endl;
  return 1;
}

bool ParseArgs(int argc, char **argv, std::map<std::string, std::string> *args) {
  *args = {{"device_id", "0"}, {"device", "ascend"}};
  for (int i = 1; i < argc; ++i) {
    std::string arg(argv[i]);
    auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::cerr << "error: bad argument '" << arg << "' (expected --key=value)\n" << kUsage << std::endl;
      return false;
    }
    (*args)[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
  }
  for (const char *key : {"mindir_path", "input_dir", "output_dir"}) {
    if (args->find(key) == args->end()) {
      std::cerr << "error: missing --" << key << "=...\n" << kUsage << std::endl;
      return false;
    }
  }
  const std::string &device = (*args)["device"];
  if (device != "ascend" && device != "cpu") {
    std::cerr << "error: --device must be ascend or cpu, got '" << device << "'\n" << kUsage << std::endl;
    return false;
  }
  const std::string &id = (*args)["device_id"];
  if (id.empty() || id.size() > 4 || id.find_first_not_of("0123456789") != std::string::npos) {
    std::cerr << "error: --device_id must be a small non-negative integer, got '" << id << "'" << std::endl;
    return false;
  }
  return true;
}

bool ListBinFiles(const std::string &dir, std::vector<std::string> *names, std::string *error) {
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) {
    *error = "cannot open input folder " + dir + ": " + std::strerror(errno);
    return false;
  }
  while (dirent *e = readdir(d)) {
    std::string name(e->d_name);
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".bin") == 0) names->push_back(name);
  }
  closedir(d);
  std::sort(names->begin(), names->end());
  return true;
}

// Reads the whole file only when its size is exactly `expected` bytes (checked before reading).
bool ReadInput(const std::string &path, size_t expected, std::vector<char> *data, std::string *error) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  std::streamsize size = f.tellg();
  if (size < 0 || static_cast<size_t>(size) != expected) {
    *error = path + ": " + std::to_string(size) + " bytes, but the model input needs " + std::to_string(expected);
    return false;
  }
  f.seekg(0, std::ios::beg);
  data->resize(expected);
  if (!f.read(data->data(), size)) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

bool WriteOutput(const std::string &path, const mindspore::MSTensor &tensor, std::string *error) {
  auto data = tensor.Data();
  if (data == nullptr) {
    *error = "the model returned no data for " + path;
    return false;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(data.get()), static_cast<std::streamsize>(tensor.DataSize()));
  out.close();
  if (!out) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

std::shared_ptr<mindspore::Context> MakeContext(const std::string &device, uint32_t device_id) {
  auto context = std::make_shared<mindspore::Context>();
  if (device == "ascend") {
    auto ascend = std::make_shared<mindspore::AscendDeviceInfo>();
    ascend->SetDeviceID(device_id);
    context->MutableDeviceInfo().push_back(ascend);
  } else {
    context->MutableDeviceInfo().push_back(std::make_shared<mindspore::CPUDeviceInfo>());
  }
  return context;
}

}  // namespace

int main(int argc, char **argv) {
  std::map<std::string, std::string> args;
  if (!ParseArgs(argc, argv, &args)) return 2;
  const std::string &in_dir = args["input_dir"];
  const std::string &out_dir = args["output_dir"];

  mindspore::Model model;
  auto context = MakeContext(args["device"], static_cast<uint32_t>(std::stoul(args["device_id"])));
  mindspore::Status ret = model.Build(args["mindir_path"], mindspore::ModelType::kMindIR, context);
  if (ret != mindspore::kSuccess) {
    return Fail("cannot build " + args["mindir_path"] + " on " + args["device"] + " " + args["device_id"] + ": " +
                ret.ToString());
  }
  std::vector<mindspore::MSTensor> inputs = model.GetInputs();
  if (inputs.size() != 1) {
    return Fail(args["mindir_path"] + ": expected a model with one input, found " + std::to_string(inputs.size()));
  }
  if (mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Fail("cannot create output folder " + out_dir + ": " + std::strerror(errno));
  }

  std::vector<std::string> files;
  std::string error;
  if (!ListBinFiles(in_dir, &files, &error)) return Fail(error);
  double total_ms = 0;
  std::vector<char> buffer;
  for (const auto &name : files) {
    const std::string in_path = in_dir + "/" + name;
    if (!ReadInput(in_path, inputs[0].DataSize(), &buffer, &error)) return Fail(error);
    void *dst = inputs[0].MutableData();
    if (dst == nullptr) return Fail("cannot allocate the model input for " + in_path);
    std::memcpy(dst, buffer.data(), buffer.size());
    std::vector<mindspore::MSTensor> outputs;
    auto start = std::chrono::steady_clock::now();
    ret = model.Predict(inputs, &outputs);
    total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (ret != mindspore::kSuccess) return Fail("predict failed for " + in_path + ": " + ret.ToString());
    if (outputs.empty()) return Fail("the model returned no output for " + in_path);
    const std::string out_path = out_dir + "/" + name.substr(0, name.size() - 4) + "_0.bin";
    if (!WriteOutput(out_path, outputs[0], &error)) return Fail(error);
  }
  std::cout << "processed " << files.size() << " files, mean " << (files.empty() ? 0 : total_ms / files.size())
            << " ms per batch" << std::endl;
  return 0;
}
