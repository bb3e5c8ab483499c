#include "lifecycle/memory_budget.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace respawn {
namespace {

std::string mib(double bytes) {
  return std::to_string(static_cast<std::uint64_t>(std::ceil(bytes / (1024.0 * 1024.0)))) + " MiB";
}

}  // namespace

void MemoryBudget::configure(std::uint64_t limit_bytes, double min_cost,
                             std::uint64_t slack_bytes) {
  limit_ = limit_bytes;
  min_cost_ = min_cost;
  slack_ = slack_bytes;
  cost_ = std::max(cost_, min_cost_);
}

void MemoryBudget::set_base(std::uint64_t base_bytes) {
  base_ = base_bytes;
}

void MemoryBudget::observe(std::uint64_t base_bytes, std::uint64_t peak_bytes,
                           std::uint64_t weight) {
  base_ = base_bytes;
  if (weight == 0) return;
  const std::uint64_t floor = base_bytes + slack_;
  const double grown = peak_bytes > floor ? static_cast<double>(peak_bytes - floor) : 0;
  cost_ = std::max({cost_, min_cost_, grown / static_cast<double>(weight)});
  learned_ = true;
}

void MemoryBudget::observe_oom(std::uint64_t weight) {
  if (weight == 0 || limit_ == 0) return;
  // The smallest cost at which this weight would not have been admitted.
  const double room = limit_ > base_ + slack_ ? static_cast<double>(limit_ - base_ - slack_) : 0;
  cost_ = std::max(cost_, room / static_cast<double>(weight) * 1.01);
  learned_ = true;
}

std::uint64_t MemoryBudget::predicted_peak(std::uint64_t weight) const {
  return base_ + slack_ + static_cast<std::uint64_t>(cost_ * static_cast<double>(weight));
}

bool MemoryBudget::admits(std::uint64_t inflight_weight, std::uint64_t weight) const {
  if (!enabled() || inflight_weight == 0) return true;  // one at a time always runs
  if (!learned_) return false;                          // the probe has not reported yet
  return predicted_peak(inflight_weight + weight) <= limit_;
}

std::optional<std::string> MemoryBudget::never_fits(std::uint64_t weight) const {
  if (!enabled()) return std::nullopt;
  const auto peak = predicted_peak(weight);
  // A worker over the budget before any request cannot be judged by it: requests then run one
  // at a time and the same limit recycles the worker after each (docs/policy.md).
  if (peak <= limit_ || base_ + slack_ >= limit_) return std::nullopt;
  return "this request needs about " + mib(static_cast<double>(peak - base_)) +
         " of worker memory on top of the " + mib(static_cast<double>(base_)) +
         " in use, over the " + mib(static_cast<double>(limit_)) + " budget";
}

nlohmann::json MemoryBudget::status() const {
  if (!enabled()) return nullptr;
  return {{"limit_bytes", limit_},
          {"base_bytes", base_},
          {"slack_bytes", slack_},
          {"cost_per_weight", cost_},
          {"learned", learned_}};
}

}  // namespace respawn
