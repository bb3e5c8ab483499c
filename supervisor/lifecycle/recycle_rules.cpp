#include "lifecycle/recycle_rules.hpp"

namespace respawn {

std::optional<RecycleReason> planned_recycle_reason(const Policy& p, const WorkerUsage& u) {
  constexpr std::uint64_t kMiB = 1024 * 1024;
  if (u.request_limit > 0 && u.served >= u.request_limit) return RecycleReason::max_requests;
  if (p.max_worker_rss_mb > 0 && u.rss_bytes > p.max_worker_rss_mb * kMiB)
    return RecycleReason::memory;
  if (p.max_gpu_memory_mb > 0 && u.gpu_bytes > p.max_gpu_memory_mb * kMiB)
    return RecycleReason::memory;
  if (p.max_worker_age_s > 0 && u.age_s >= static_cast<double>(p.max_worker_age_s)) {
    return RecycleReason::max_age;
  }
  return std::nullopt;
}

std::uint64_t draw_request_limit(const Policy& p, std::uint64_t random) {
  if (p.max_requests == 0) return 0;
  return p.max_requests + (p.max_requests_jitter == 0 ? 0 : random % (p.max_requests_jitter + 1));
}

FailedJobAction failed_job_action(const Policy& p, unsigned failures, unsigned replays,
                                  bool evidence) {
  if (evidence && failures >= p.poison_threshold) return FailedJobAction::quarantine;
  if (replays < p.replay_limit) return FailedJobAction::replay;
  return FailedJobAction::fail;
}

}  // namespace respawn
