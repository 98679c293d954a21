// Test-only stand-in for include/api/types.h (see status.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "include/api/data_type.h"

namespace mindspore {
enum class ModelType : uint32_t { kMindIR = 0 };

class MSTensor {
 public:
  class Impl;
  MSTensor();
  explicit MSTensor(const std::shared_ptr<Impl> &impl);
  std::shared_ptr<const void> Data() const;
  void *MutableData();
  size_t DataSize() const;
  const std::vector<int64_t> &Shape() const;
  enum DataType DataType() const;
  int64_t ElementNum() const;

 private:
  std::shared_ptr<Impl> impl_;
};
}  // namespace mindspore
