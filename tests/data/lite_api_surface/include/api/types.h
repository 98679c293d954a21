// Test-only stand-in for include/api/types.h (see status.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace mindspore {
enum class ModelType : uint32_t { kMindIR = 0 };

class MSTensor {
 public:
  std::shared_ptr<const void> Data() const;
  void *MutableData();
  size_t DataSize() const;
  const std::vector<int64_t> &Shape() const;
  int64_t ElementNum() const;
};
}  // namespace mindspore
