#pragma once
// Triton's statistics extension (GET /v2/models[/{m}]/stats): per-model counts and cumulative
// durations of the requests that ran the model. Success and failure time a request from its
// arrival to its answer, queue from arrival to its hand-over to the worker; compute_* come from
// the worker (the whole batch's time, charged to each request in it, as Triton does), and
// batch_stats count executions per batch size. Used on the I/O thread only.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace respawn {

class ModelStats {
 public:
  struct Compute {
    std::uint64_t input_ns = 0, infer_ns = 0, output_ns = 0;
  };
  // The worker's "compute_ns" of an answer, if it sent one.
  static std::optional<Compute> compute_from(const nlohmann::json& worker_meta);

  void on_success(std::chrono::nanoseconds total, std::optional<std::chrono::nanoseconds> queue,
                  std::optional<Compute> compute, std::size_t batch_size);
  void on_failure(std::chrono::nanoseconds total);
  // One entry of "model_stats".
  nlohmann::json to_json(const std::string& name, const std::string& version) const;

 private:
  struct Duration {
    std::uint64_t count = 0, ns = 0;
    void add(std::uint64_t n) {
      ++count;
      ns += n;
    }
    nlohmann::json to_json() const { return {{"count", count}, {"ns", ns}}; }
  };
  // Per batch size: the answers that came from batches of that size and their compute times.
  // Each batch of b answers is one execution, so executions = answers / b.
  struct Batch {
    std::uint64_t answers = 0, input_ns = 0, infer_ns = 0, output_ns = 0;
  };
  Duration success_, fail_, queue_, compute_input_, compute_infer_, compute_output_;
  std::uint64_t inferences_ = 0;
  std::int64_t last_inference_ms_ = 0;  // Unix time of the last success, 0 before any
  std::map<std::size_t, Batch> batches_;
};

}  // namespace respawn
