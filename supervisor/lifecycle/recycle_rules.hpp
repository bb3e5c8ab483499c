#pragma once
// The recycle policy's decisions as pure functions, so every rule is unit-testable without a
// process: when a healthy worker is due for a planned recycle, and what becomes of a request
// that was in flight when its worker failed. Thread-safe.
#include <cstdint>
#include <optional>

#include "lifecycle/recycle_reason.hpp"
#include "respawn/policy.hpp"

namespace respawn {

struct WorkerUsage {
  std::uint64_t served = 0;
  std::uint64_t request_limit = 0;  // 0 = none
  double age_s = 0;
  std::uint64_t rss_bytes = 0;
  std::uint64_t gpu_bytes = 0;
};

// The planned-recycle reason for a worker that just finished a request or sits idle:
// max_requests, memory, max_age, or nothing.
std::optional<RecycleReason> planned_recycle_reason(const Policy& policy, const WorkerUsage& u);

// max_requests plus a jitter drawn from 0..max_requests_jitter, or 0 when max_requests is 0.
std::uint64_t draw_request_limit(const Policy& policy, std::uint64_t random);

enum class FailedJobAction { replay, quarantine, fail };

// For a request present at a worker failure (`failures` counts this one): quarantine once it
// has witnessed poison_threshold failures and this one is evidence against it (it ran alone
// and the worker died of it), else replay while replays < replay_limit, else fail.
FailedJobAction failed_job_action(const Policy& policy, unsigned failures, unsigned replays,
                                  bool evidence);

}  // namespace respawn
