// Test-only stand-in for include/api/data_type.h (see status.h): the values are MindSpore's type ids.
#pragma once

namespace mindspore {
enum class DataType : int {
  kTypeUnknown = 0,
  kNumberTypeFloat16 = 42,
  kNumberTypeFloat32 = 43,
};
}  // namespace mindspore
