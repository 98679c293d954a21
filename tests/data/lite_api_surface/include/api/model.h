// Test-only stand-in for include/api/model.h (see status.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/status.h"
#include "include/api/types.h"

namespace mindspore {
class Model {
 public:
  Status Build(const std::string &model_path, ModelType model_type,
               const std::shared_ptr<Context> &model_context = nullptr);
  std::vector<MSTensor> GetInputs();
  Status Predict(const std::vector<MSTensor> &inputs, std::vector<MSTensor> *outputs);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};
}  // namespace mindspore
