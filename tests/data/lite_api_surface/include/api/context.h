// Test-only stand-in for include/api/context.h (see status.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mindspore {
class DeviceInfoContext {
 public:
  virtual ~DeviceInfoContext() = default;
};

class CPUDeviceInfo : public DeviceInfoContext {};

class AscendDeviceInfo : public DeviceInfoContext {
 public:
  void SetDeviceID(uint32_t device_id);
  uint32_t GetDeviceID() const;
  void SetPrecisionMode(const std::string &precision_mode);  // the real header: inline, over a char-vector overload
  std::string GetPrecisionMode() const;

 private:  // the real class keeps its settings behind a data pointer; the app never sees either
  uint32_t device_id_ = 0;
  std::string precision_mode_;
};

class Context {
 public:
  std::vector<std::shared_ptr<DeviceInfoContext>> &MutableDeviceInfo();

 private:
  std::vector<std::shared_ptr<DeviceInfoContext>> device_info_;
};
}  // namespace mindspore
