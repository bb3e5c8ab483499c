#pragma once
// Memory-aware admission: predicts the worker's peak memory for a set of requests and admits
// only what keeps it under the budget (max_gpu_memory_mb on cuda, max_worker_rss_mb on cpu).
//
// The model is linear: peak = base + slack + cost x (sum of the requests' memory weights),
// where a request's weight is its tensor bytes (infer) or its context tokens (generate), `base`
// is the memory the worker had in use when its last batch began, `slack` a fixed per-batch term
// (page and allocator granularity, buffers that do not grow with the batch), and `cost` (bytes
// per unit of weight) is learned from the worker's reports: the largest
// (peak - base - slack) / weight any batch showed, and raised after an out-of-memory batch so
// that a batch that heavy is not admitted again. Without the slack, a tiny request that grew the
// RSS by one 644 KiB step would teach a cost of 40 KB per byte and get every larger one refused.
// Until the first report, requests go one at a time (the probe that teaches the cost). A request
// that could not fit even alone is refused before it reaches the worker. Pure logic; not
// thread-safe.
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace respawn {

class MemoryBudget {
 public:
  // limit 0 = no budget: everything fits. min_cost: a floor for the cost (e.g. 1 byte per byte
  // of input for tensor requests, which the worker copies at least once). slack: the fixed
  // per-batch term.
  void configure(std::uint64_t limit_bytes, double min_cost, std::uint64_t slack_bytes = 0);
  // A fresh worker: its memory in use after loading; what was learned about cost stays (the
  // model is the same), but the base is the new worker's.
  void set_base(std::uint64_t base_bytes);
  // A batch's report: memory in use when it began, its peak, and its total weight.
  void observe(std::uint64_t base_bytes, std::uint64_t peak_bytes, std::uint64_t weight);
  // A batch of this total weight ran out of memory (and was retried smaller).
  void observe_oom(std::uint64_t weight);

  bool enabled() const { return limit_ > 0; }
  bool learned() const { return learned_; }
  std::uint64_t limit() const { return limit_; }
  double cost() const { return cost_; }
  // base + slack + cost x weight.
  std::uint64_t predicted_peak(std::uint64_t weight) const;
  // Whether a request of `weight` may join requests of `inflight_weight` at the worker.
  bool admits(std::uint64_t inflight_weight, std::uint64_t weight) const;
  // Why a request of `weight` can never fit, even alone, by what is known so far (the cost
  // floor before any report); nullopt when it can, or when the worker is over the budget
  // before any request (then nothing could, and requests run one at a time).
  std::optional<std::string> never_fits(std::uint64_t weight) const;
  nlohmann::json status() const;

 private:
  std::uint64_t limit_ = 0;
  double min_cost_ = 0;
  std::uint64_t slack_ = 0;
  double cost_ = 0;
  bool learned_ = false;
  std::uint64_t base_ = 0;
};

}  // namespace respawn
