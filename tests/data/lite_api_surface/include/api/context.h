// Test-only stand-in for include/api/context.h (see status.h).
#pragma once
#include <cstdint>
#include <memory>
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
};

class Context {
 public:
  std::vector<std::shared_ptr<DeviceInfoContext>> &MutableDeviceInfo();
};
}  // namespace mindspore
