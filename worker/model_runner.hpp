#pragma once
// The worker's model: a TorchScript module loaded once onto cuda or cpu, warmed up, and run
// per request under InferenceMode. The only place libtorch is touched (its headers stay in
// model_runner.cpp). Every libtorch exception is caught here and classified into a
// WorkerError. Not thread-safe: the worker serves one request at a time on one thread.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"
#include "respawn/tensor_codec.hpp"
#include "respawn/worker_error.hpp"

namespace respawn::worker {

struct LoadOptions {
  std::string model_path;
  std::string device = "auto";  // auto | cuda | cpu
  std::string task;             // generate | tensor; empty = what the model's respawn.json says
  int threads = 0;              // intra-op threads; 0 = libtorch's default
};

struct TensorOutputs {
  std::vector<TensorMeta> tensors;
  std::string blob;
};

class ModelRunner {
 public:
  // Loads, evals and warms up the model. Throws std::runtime_error with the reason on failure.
  static std::unique_ptr<ModelRunner> load(const LoadOptions& options);
  ~ModelRunner();

  // What the ready frame reports: task, device, inputs/outputs, load time, memory.
  const nlohmann::json& info() const;
  const std::string& task() const;
  std::size_t max_context() const;

  Result<TensorOutputs, WorkerError> infer(const std::vector<TensorMeta>& inputs,
                                           std::string_view blob);
  // Tries an allocation no device can satisfy and returns how that failure classifies (for
  // fault injection: a real allocator failure, not a simulated one).
  WorkerError allocate_too_much();
  // Logits of the token after ids (one sequence), as floats on the host.
  Result<std::vector<float>, WorkerError> next_token_logits(const std::vector<std::int64_t>& ids);

 private:
  struct Impl;
  explicit ModelRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace respawn::worker
