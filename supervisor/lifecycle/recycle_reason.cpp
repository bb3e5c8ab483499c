#include "lifecycle/recycle_reason.hpp"

namespace respawn {

namespace {

struct Traits {
  std::string_view name;
  bool planned;  // retired on purpose while healthy
  bool breaker;  // counts towards the crash-loop breaker
  bool charges;  // the requests in flight witnessed a failure
};

// The one switch: -Wswitch names the reason a new enumerator leaves undecided.
constexpr Traits traits(RecycleReason reason) {
  switch (reason) {
    case RecycleReason::max_requests:
      return {"max_requests", true, false, true};
    case RecycleReason::memory:
      return {"memory", true, false, true};
    case RecycleReason::max_age:
      return {"max_age", true, false, true};
    case RecycleReason::by_operator:
      return {"operator", true, false, false};
    case RecycleReason::reload:
      return {"reload", true, false, false};
    case RecycleReason::shutdown:
      return {"shutdown", true, false, true};
    case RecycleReason::crash:
      return {"crash", false, true, true};
    case RecycleReason::hang:
      return {"hang", false, true, true};
    case RecycleReason::oom:
      return {"oom", false, true, true};
    case RecycleReason::cuda_error:
      return {"cuda_error", false, true, true};
    case RecycleReason::protocol:
      return {"protocol", false, true, true};
    case RecycleReason::load_failure:
      return {"load_failure", false, true, true};
    case RecycleReason::timeout:
      return {"timeout", false, false, false};
  }
  return {"unknown", false, false, true};
}

}  // namespace

std::string_view to_string(RecycleReason reason) {
  return traits(reason).name;
}

std::optional<RecycleReason> recycle_reason_from_string(std::string_view name) {
  for (const auto reason : kAllRecycleReasons) {
    if (to_string(reason) == name) return reason;
  }
  return std::nullopt;
}

bool is_planned(RecycleReason reason) {
  return traits(reason).planned;
}
bool counts_for_breaker(RecycleReason reason) {
  return traits(reason).breaker;
}
bool charges_requests_in_flight(RecycleReason reason) {
  return traits(reason).charges;
}

std::string recycle_reasons_help() {
  std::string planned;
  std::string unplanned;
  for (const auto reason : kAllRecycleReasons) {
    if (reason == RecycleReason::shutdown) continue;  // exits at shutdown are not counted
    auto& list = is_planned(reason) ? planned : unplanned;
    if (!list.empty()) list += ", ";
    list += to_string(reason);
  }
  return "Workers replaced, by reason (planned: " + planned + "; unplanned: " + unplanned + ").";
}

}  // namespace respawn
