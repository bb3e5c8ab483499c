#include "lifecycle/recycle_reason.hpp"

namespace respawn {

std::string_view to_string(RecycleReason reason) {
  switch (reason) {
    case RecycleReason::max_requests:
      return "max_requests";
    case RecycleReason::memory:
      return "memory";
    case RecycleReason::max_age:
      return "max_age";
    case RecycleReason::by_operator:
      return "operator";
    case RecycleReason::shutdown:
      return "shutdown";
    case RecycleReason::crash:
      return "crash";
    case RecycleReason::hang:
      return "hang";
    case RecycleReason::oom:
      return "oom";
    case RecycleReason::cuda_error:
      return "cuda_error";
    case RecycleReason::protocol:
      return "protocol";
    case RecycleReason::load_failure:
      return "load_failure";
    case RecycleReason::timeout:
      return "timeout";
  }
  return "unknown";
}

std::optional<RecycleReason> recycle_reason_from_string(std::string_view name) {
  for (const auto reason : kAllRecycleReasons) {
    if (to_string(reason) == name) return reason;
  }
  return std::nullopt;
}

bool is_planned(RecycleReason reason) {
  switch (reason) {
    case RecycleReason::max_requests:
    case RecycleReason::memory:
    case RecycleReason::max_age:
    case RecycleReason::by_operator:
    case RecycleReason::shutdown:
      return true;
    case RecycleReason::crash:
    case RecycleReason::hang:
    case RecycleReason::oom:
    case RecycleReason::cuda_error:
    case RecycleReason::protocol:
    case RecycleReason::load_failure:
    case RecycleReason::timeout:
      return false;
  }
  return false;
}

bool counts_for_breaker(RecycleReason reason) {
  switch (reason) {
    case RecycleReason::crash:
    case RecycleReason::hang:
    case RecycleReason::oom:
    case RecycleReason::cuda_error:
    case RecycleReason::protocol:
    case RecycleReason::load_failure:
      return true;
    case RecycleReason::max_requests:
    case RecycleReason::memory:
    case RecycleReason::max_age:
    case RecycleReason::by_operator:
    case RecycleReason::shutdown:
    case RecycleReason::timeout:
      return false;
  }
  return false;
}

bool charges_requests_in_flight(RecycleReason reason) {
  switch (reason) {
    case RecycleReason::by_operator:
    case RecycleReason::timeout:
      return false;
    case RecycleReason::max_requests:
    case RecycleReason::memory:
    case RecycleReason::max_age:
    case RecycleReason::shutdown:
    case RecycleReason::crash:
    case RecycleReason::hang:
    case RecycleReason::oom:
    case RecycleReason::cuda_error:
    case RecycleReason::protocol:
    case RecycleReason::load_failure:
      return true;
  }
  return true;
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
