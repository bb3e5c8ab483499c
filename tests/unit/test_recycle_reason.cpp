// Tests for the recycle reasons (supervisor/lifecycle/recycle_reason.hpp): the names the
// metrics and the admin API show, and the decisions each reason implies.
#include "lifecycle/recycle_reason.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace respawn {
namespace {

TEST(RecycleReason, EveryReasonHasItsOwnNameThatReadsBack) {
  std::set<std::string> names;
  for (const auto reason : kAllRecycleReasons) {
    const std::string name(to_string(reason));
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name << " twice";
    EXPECT_EQ(recycle_reason_from_string(name), reason) << name;
  }
  EXPECT_EQ(names.size(), 13u);
  EXPECT_EQ(to_string(RecycleReason::by_operator), "operator");
  EXPECT_FALSE(recycle_reason_from_string("by_operator"));
  EXPECT_FALSE(recycle_reason_from_string(""));
}

TEST(RecycleReason, PlannedReasonsAreTheHealthyRetirements) {
  std::set<std::string> planned;
  for (const auto reason : kAllRecycleReasons) {
    if (is_planned(reason)) planned.insert(std::string(to_string(reason)));
  }
  EXPECT_EQ(planned, (std::set<std::string>{"max_requests", "memory", "max_age", "operator",
                                            "reload", "shutdown"}));
}

TEST(RecycleReason, NoPlannedReasonCountsForTheBreaker) {
  for (const auto reason : kAllRecycleReasons) {
    if (is_planned(reason)) {
      EXPECT_FALSE(counts_for_breaker(reason)) << to_string(reason);
    }
  }
  EXPECT_FALSE(counts_for_breaker(RecycleReason::timeout)) << "a request's fault, not a loop";
}

TEST(RecycleReason, OnlyAnOperatorOrAnotherRequestsDeadlineSparesTheRequestsInFlight) {
  for (const auto reason : kAllRecycleReasons) {
    const bool spared = reason == RecycleReason::by_operator || reason == RecycleReason::reload ||
                        reason == RecycleReason::timeout;
    EXPECT_EQ(charges_requests_in_flight(reason), !spared) << to_string(reason);
  }
}

TEST(RecycleReason, TheMetricsHelpListsEveryCountedReasonOnce) {
  const auto help = recycle_reasons_help();
  EXPECT_EQ(
      help,
      "Workers replaced, by reason (planned: max_requests, memory, max_age, operator, reload; "
      "unplanned: crash, hang, oom, cuda_error, protocol, load_failure, timeout).");
}

}  // namespace
}  // namespace respawn
