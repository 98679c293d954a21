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
//                   [--device_id=0] [--device=ascend|cpu] [--precision=float32|float16]
// --precision sets the Ascend precision mode (Lite's Ascend backend would otherwise run float16): float32 =
// "enforce_fp32", float16 = "enforce_fp16". Every output is checked against the input before it is written:
// exactly one, float32, (N, C, H, W) with the input's N, H and W.
// Exit status: 0 done, 1 a model or file error (one line naming it), 2 bad arguments (unknown options too).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"

namespace {

constexpr const char kUsage[] =
    "usage: pspnet_310 --mindir_path=M --input_dir=I --output_dir=O [--device_id=0] [--device=ascend|cpu] "
    "[--precision=float32|float16]";

int Fail(const std::string &message) {
  std::cerr << "error: " << message << std::endl;
  return 1;
}

bool ParseArgs(int argc, char **argv, std::map<std::string, std::string> *args) {
  *args = {{"device_id", "0"}, {"device", "ascend"}, {"precision", "float32"}};
  const std::set<std::string> known = {"mindir_path", "input_dir", "output_dir", "device_id", "device", "precision"};
  std::set<std::string> seen;
  for (int i = 1; i < argc; ++i) {
    std::string arg(argv[i]);
    auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::cerr << "error: bad argument '" << arg << "' (expected --key=value)\n" << kUsage << std::endl;
      return false;
    }
    const std::string key = arg.substr(2, eq - 2);
    if (known.count(key) == 0) {
      std::cerr << "error: unknown option --" << key << "\n" << kUsage << std::endl;
      return false;
    }
    if (!seen.insert(key).second) {
      std::cerr << "error: --" << key << " given twice" << std::endl;
      return false;
    }
    (*args)[key] = arg.substr(eq + 1);
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
  const std::string &precision = (*args)["precision"];
  if (precision != "float32" && precision != "float16") {
    std::cerr << "error: --precision must be float32 or float16, got '" << precision << "'" << std::endl;
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

std::string ShapeText(const std::vector<int64_t> &shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + ")";
}

// The model's input must be float32 (N, 3, H, W): what preprocess writes.
bool CheckInput(const mindspore::MSTensor &input, std::string *error) {
  const auto &shape = input.Shape();
  if (input.DataType() != mindspore::DataType::kNumberTypeFloat32 || shape.size() != 4 || shape[1] != 3 ||
      input.DataSize() != static_cast<size_t>(input.ElementNum()) * sizeof(float)) {
    *error = "the model input is not float32 (N, 3, H, W): shape " + ShapeText(shape) + ", data type " +
             std::to_string(static_cast<int>(input.DataType()));
    return false;
  }
  return true;
}

// An output is written only when it is float32 (N, C, H, W) with the input's N, H and W and holds its data.
bool CheckOutput(const std::vector<mindspore::MSTensor> &outputs, const mindspore::MSTensor &input,
                 const std::string &where, std::string *error) {
  if (outputs.size() != 1) {
    *error = "the model returned " + std::to_string(outputs.size()) + " outputs for " + where + ", expected 1";
    return false;
  }
  const auto &out = outputs[0];
  const auto &shape = out.Shape();
  const auto &in = input.Shape();
  if (out.DataType() != mindspore::DataType::kNumberTypeFloat32) {
    *error = "the model output for " + where + " is not float32 (data type " +
             std::to_string(static_cast<int>(out.DataType())) + "); export with --output logits and run float32";
    return false;
  }
  if (shape.size() != 4 || shape[0] != in[0] || shape[2] != in[2] || shape[3] != in[3] || shape[1] < 1) {
    *error = "the model output for " + where + " has shape " + ShapeText(shape) + ", expected (" +
             std::to_string(in[0]) + ", classes, " + std::to_string(in[2]) + ", " + std::to_string(in[3]) + ")";
    return false;
  }
  if (out.DataSize() != static_cast<size_t>(out.ElementNum()) * sizeof(float)) {
    *error = "the model output for " + where + " holds " + std::to_string(out.DataSize()) + " bytes, its shape " +
             ShapeText(shape) + " needs " + std::to_string(out.ElementNum() * 4);
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
  // A temporary name in the same folder, then a rename: a failed write (a full disk) never leaves a cut-short
  // file under the final name, and an earlier file of that name stays until the new one is complete.
  const std::string tmp = path + ".part";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(data.get()), static_cast<std::streamsize>(tensor.DataSize()));
  out.flush();
  out.close();
  if (!out) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    unlink(tmp.c_str());  // a file only: a folder of that name is not this app's
    return false;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
    unlink(tmp.c_str());  // a file only: a folder of that name is not this app's
    return false;
  }
  return true;
}

std::shared_ptr<mindspore::Context> MakeContext(const std::string &device, uint32_t device_id,
                                                const std::string &precision) {
  auto context = std::make_shared<mindspore::Context>();
  if (device == "ascend") {
    auto ascend = std::make_shared<mindspore::AscendDeviceInfo>();
    ascend->SetDeviceID(device_id);
    ascend->SetPrecisionMode(precision == "float16" ? "enforce_fp16" : "enforce_fp32");
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
  std::vector<std::string> files;  // the inputs are listed before the (slow) model build
  std::string error;
  if (!ListBinFiles(in_dir, &files, &error)) return Fail(error);
  if (files.empty()) return Fail("no .bin input files in " + in_dir + " (run the preprocessing first)");

  mindspore::Model model;
  auto context = MakeContext(args["device"], static_cast<uint32_t>(std::stoul(args["device_id"])), args["precision"]);
  mindspore::Status ret = model.Build(args["mindir_path"], mindspore::ModelType::kMindIR, context);
  if (ret != mindspore::kSuccess) {
    return Fail("cannot build " + args["mindir_path"] + " on " + args["device"] + " " + args["device_id"] + ": " +
                ret.ToString());
  }
  std::vector<mindspore::MSTensor> inputs = model.GetInputs();
  if (inputs.size() != 1) {
    return Fail(args["mindir_path"] + ": expected a model with one input, found " + std::to_string(inputs.size()));
  }
  if (!CheckInput(inputs[0], &error)) return Fail(args["mindir_path"] + ": " + error);
  if (mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Fail("cannot create output folder " + out_dir + ": " + std::strerror(errno));
  }

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
    if (!CheckOutput(outputs, inputs[0], in_path, &error)) return Fail(error);
    const std::string out_path = out_dir + "/" + name.substr(0, name.size() - 4) + "_0.bin";
    if (!WriteOutput(out_path, outputs[0], &error)) return Fail(error);
  }
  std::cout << "processed " << files.size() << " files, mean " << total_ms / files.size()
            << " ms per batch" << std::endl;
  return 0;
}
