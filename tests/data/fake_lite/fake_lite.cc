// Test-only stand-in for libmindspore-lite.so, built against tests/data/lite_api_surface. It lets the tests
// build the 310 app with CMake as on a 310 host and drive it through every path. Behaviour by environment:
//   FAKE_LITE_SHAPE=N,3,H,W (model input, default 2,3,33,33)   FAKE_LITE_CLASSES=C (default 6)
//   FAKE_LITE_MODE=ok | build_fail | null_data | wrong_shape | fp16 | two_outputs | short_data | fp16_input
//   FAKE_LITE_RECORD=path: Build appends "device=<ascend|cpu> id=<n> precision=<mode>"
// In mode ok, logits[n][c][y][x] = input[n][c % 3][y][x] + c.
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"

extern "C" int fake_dnnl_version();

namespace mindspore {
namespace {
std::string Env(const char *name, const std::string &fallback) {
  const char *v = std::getenv(name);
  return v ? std::string(v) : fallback;
}
}  // namespace

class MSTensor::Impl {
 public:
  std::vector<int64_t> shape;
  std::vector<float> data;
  enum DataType type = DataType::kNumberTypeFloat32;
  bool null_data = false;
  size_t short_by = 0;
};

MSTensor::MSTensor() : impl_(std::make_shared<Impl>()) {}
MSTensor::MSTensor(const std::shared_ptr<Impl> &impl) : impl_(impl) {}
std::shared_ptr<const void> MSTensor::Data() const {
  if (impl_->null_data) return nullptr;
  return std::shared_ptr<const void>(impl_->data.data(), [](const void *) {});
}
void *MSTensor::MutableData() { return impl_->data.data(); }
size_t MSTensor::DataSize() const { return impl_->data.size() * sizeof(float) - impl_->short_by; }
const std::vector<int64_t> &MSTensor::Shape() const { return impl_->shape; }
enum DataType MSTensor::DataType() const { return impl_->type; }
int64_t MSTensor::ElementNum() const {
  int64_t n = 1;
  for (auto d : impl_->shape) n *= d;
  return n;
}

std::string Status::ToString() const { return msg_.empty() ? "code " + std::to_string(code_) : msg_; }

void AscendDeviceInfo::SetDeviceID(uint32_t device_id) { device_id_ = device_id; }
uint32_t AscendDeviceInfo::GetDeviceID() const { return device_id_; }
void AscendDeviceInfo::SetPrecisionMode(const std::string &mode) { precision_mode_ = mode; }
std::string AscendDeviceInfo::GetPrecisionMode() const { return precision_mode_; }
std::vector<std::shared_ptr<DeviceInfoContext>> &Context::MutableDeviceInfo() { return device_info_; }

struct Model::Impl {
  std::vector<MSTensor> inputs;
  std::string mode;
  int64_t classes = 6;
};

Status Model::Build(const std::string &model_path, ModelType, const std::shared_ptr<Context> &context) {
  if (fake_dnnl_version() != 2) return Status(kLiteError, "third-party library mismatch");
  impl_ = std::make_shared<Impl>();
  impl_->mode = Env("FAKE_LITE_MODE", "ok");
  impl_->classes = std::stoll(Env("FAKE_LITE_CLASSES", "6"));
  std::string record = Env("FAKE_LITE_RECORD", "");
  if (!record.empty() && context) {
    std::ofstream out(record, std::ios::app);
    for (const auto &info : context->MutableDeviceInfo()) {
      auto ascend = std::dynamic_pointer_cast<AscendDeviceInfo>(info);
      if (ascend) {
        out << "device=ascend id=" << ascend->GetDeviceID() << " precision=" << ascend->GetPrecisionMode() << "\n";
      } else {
        out << "device=cpu\n";
      }
    }
  }
  if (impl_->mode == "build_fail" || !std::ifstream(model_path)) {
    return Status(kLiteError, "fake lite: cannot load " + model_path);
  }
  auto tensor = std::make_shared<MSTensor::Impl>();
  std::stringstream dims(Env("FAKE_LITE_SHAPE", "2,3,33,33"));
  for (std::string d; std::getline(dims, d, ',');) tensor->shape.push_back(std::stoll(d));
  int64_t n = 1;
  for (auto d : tensor->shape) n *= d;
  tensor->data.assign(static_cast<size_t>(n), 0.0f);
  if (impl_->mode == "fp16_input") tensor->type = DataType::kNumberTypeFloat16;
  impl_->inputs = {MSTensor(tensor)};
  return Status(kSuccess);
}

std::vector<MSTensor> Model::GetInputs() { return impl_->inputs; }

Status Model::Predict(const std::vector<MSTensor> &inputs, std::vector<MSTensor> *outputs) {
  const auto &in = inputs[0];
  const auto &s = in.Shape();
  auto out = std::make_shared<MSTensor::Impl>();
  int64_t c = impl_->classes, h = s[2], w = s[3];
  if (impl_->mode == "wrong_shape") h = h / 8 + 1, w = w / 8 + 1;
  out->shape = {s[0], c, h, w};
  out->data.assign(static_cast<size_t>(s[0] * c * h * w), 0.0f);
  const float *x = static_cast<const float *>(in.Data().get());
  if (impl_->mode != "wrong_shape") {
    for (int64_t n = 0; n < s[0]; ++n)
      for (int64_t k = 0; k < c; ++k)
        for (int64_t i = 0; i < h * w; ++i)
          out->data[((n * c + k) * h * w) + i] = x[((n * 3 + k % 3) * h * w) + i] + static_cast<float>(k);
  }
  if (impl_->mode == "null_data") out->null_data = true;
  if (impl_->mode == "fp16") out->type = DataType::kNumberTypeFloat16;
  if (impl_->mode == "short_data") out->short_by = 4;
  outputs->clear();
  outputs->push_back(MSTensor(out));
  if (impl_->mode == "two_outputs") outputs->push_back(MSTensor(out));
  return Status(kSuccess);
}
}  // namespace mindspore
