// Test-only stand-in: the part of MindSpore Lite's C++ API (include/api) that inference/ascend310 uses,
// declared from the API documentation so the app's code is compiled by every test run. Not the real
// headers: build.sh --check against a Lite package checks those (README, "Ascend 310").
#pragma once
#include <string>

namespace mindspore {
enum StatusCode { kSuccess = 0, kLiteError = -1 };

class Status {
 public:
  Status(StatusCode code = kSuccess, const std::string &msg = "") : code_(code), msg_(msg) {}  // NOLINT: implicit
  std::string ToString() const;
  bool operator==(StatusCode other) const { return code_ == other; }
  bool operator!=(StatusCode other) const { return code_ != other; }

 private:
  StatusCode code_;
  std::string msg_;
};
}  // namespace mindspore
