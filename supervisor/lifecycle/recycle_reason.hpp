#pragma once
// Why a worker was replaced: the one list of reasons, and every decision that depends on the
// reason, made in one switch with no default (recycle_reason.cpp), so that -Wswitch names the
// reason a new enumerator leaves undecided. to_string gives the name the metrics, logs and admin
// API show. Pure; thread-safe.
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace respawn {

enum class RecycleReason {
  // Planned: the worker was healthy and retired on purpose.
  max_requests,  // served its request limit (max_requests + jitter)
  memory,        // above max_worker_rss_mb or max_gpu_memory_mb after a request
  max_age,       // older than max_worker_age_s
  by_operator,   // POST /admin/recycle ("operator")
  reload,        // POST /admin/reload: the model file was read again
  shutdown,      // the server is stopping
  // Unplanned: something went wrong.
  crash,         // it died by itself after it was ready (or its socket closed)
  hang,          // silent for hang_timeout_ms with requests in flight
  oom,           // reported an out-of-memory error that left it unhealthy
  cuda_error,    // reported a sticky CUDA error
  protocol,      // sent a frame the protocol does not allow
  load_failure,  // did not become ready (exited, failed to load, load_timeout_ms)
  timeout,       // killed because a request ran past request_timeout_ms
};

inline constexpr std::array kAllRecycleReasons = {
    RecycleReason::max_requests, RecycleReason::memory,   RecycleReason::max_age,
    RecycleReason::by_operator,  RecycleReason::reload,   RecycleReason::shutdown,
    RecycleReason::crash,        RecycleReason::hang,     RecycleReason::oom,
    RecycleReason::cuda_error,   RecycleReason::protocol, RecycleReason::load_failure,
    RecycleReason::timeout};

std::string_view to_string(RecycleReason reason);
std::optional<RecycleReason> recycle_reason_from_string(std::string_view name);

// Retired on purpose while healthy (a graceful drain once nothing is in flight), not a failure.
bool is_planned(RecycleReason reason);
// Unplanned failures that count towards the crash-loop breaker: not timeouts (a request's
// fault), not operator recycles, not planned ones.
bool counts_for_breaker(RecycleReason reason);
// Whether the requests in flight at this exit count it as a failure they witnessed (towards
// replay_limit and quarantine). Not for an operator's recycle or another request's deadline:
// those requests are sent again as they were.
bool charges_requests_in_flight(RecycleReason reason);

// The metrics' help text for respawn_worker_recycles_total, listing the reasons.
std::string recycle_reasons_help();

}  // namespace respawn
