// Tests for the recycle policy's pure decisions (supervisor/lifecycle/recycle_rules.hpp).
#include "lifecycle/recycle_rules.hpp"

#include <cstdint>
#include <limits>
#include <set>
#include <string>

#include <gtest/gtest.h>

namespace respawn {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

std::string reason_of(const Policy& policy, const WorkerUsage& u) {
  const auto reason = planned_recycle_reason(policy, u);
  return reason ? std::string(to_string(*reason)) : std::string("<none>");
}

// --- planned_recycle_reason ---

TEST(RecycleRules, DefaultPolicyNeverRecycles) {
  const Policy p;
  EXPECT_EQ(reason_of(p, {}), "<none>");
  WorkerUsage heavy;
  heavy.served = 1000000;
  heavy.age_s = 1e9;
  heavy.rss_bytes = kMax;
  heavy.gpu_bytes = kMax;
  EXPECT_EQ(reason_of(p, heavy), "<none>");
}

TEST(RecycleRules, MaxRequestsAtTheLimit) {
  Policy p;
  p.max_requests = 10;
  WorkerUsage u;
  u.request_limit = 10;
  u.served = 0;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.served = 9;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.served = 10;
  EXPECT_EQ(reason_of(p, u), "max_requests");
  u.served = 11;
  EXPECT_EQ(reason_of(p, u), "max_requests");
}

TEST(RecycleRules, MaxRequestsUsesTheWorkersDrawnLimit) {
  // The per-worker limit (max_requests plus jitter) decides, not max_requests alone.
  Policy p;
  p.max_requests = 10;
  p.max_requests_jitter = 5;
  WorkerUsage u;
  u.request_limit = 13;
  u.served = 12;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.served = 13;
  EXPECT_EQ(reason_of(p, u), "max_requests");
}

TEST(RecycleRules, MaxRequestsOneRecyclesAfterEveryRequest) {
  Policy p;
  p.max_requests = 1;
  WorkerUsage u;
  u.request_limit = 1;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.served = 1;
  EXPECT_EQ(reason_of(p, u), "max_requests");
}

TEST(RecycleRules, RequestLimitZeroIsOff) {
  Policy p;
  WorkerUsage u;
  u.request_limit = 0;
  u.served = kMax;
  EXPECT_EQ(reason_of(p, u), "<none>");
}

TEST(RecycleRules, RssExactlyAtTheLimitIsNotOver) {
  Policy p;
  p.max_worker_rss_mb = 100;
  WorkerUsage u;
  u.rss_bytes = 100 * kMiB - 1;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.rss_bytes = 100 * kMiB;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.rss_bytes = 100 * kMiB + 1;
  EXPECT_EQ(reason_of(p, u), "memory");
  u.rss_bytes = kMax;
  EXPECT_EQ(reason_of(p, u), "memory");
}

TEST(RecycleRules, RssLimitIsInMiB) {
  Policy p;
  p.max_worker_rss_mb = 100;
  WorkerUsage u;
  // 101 MB (decimal) is still under 100 MiB (104,857,600 bytes).
  u.rss_bytes = 101 * 1000 * 1000;
  EXPECT_EQ(reason_of(p, u), "<none>");
  // 100 MiB + 1 KiB is over.
  u.rss_bytes = 100 * kMiB + 1024;
  EXPECT_EQ(reason_of(p, u), "memory");
}

TEST(RecycleRules, RssLimitAtTheLargestAllowedValue) {
  Policy p;
  p.max_worker_rss_mb = 16777216;  // the knob's maximum: 16 TiB
  WorkerUsage u;
  u.rss_bytes = 16777216 * kMiB;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.rss_bytes = 16777216 * kMiB + 1;
  EXPECT_EQ(reason_of(p, u), "memory");
}

TEST(RecycleRules, RssLimitZeroIsOff) {
  Policy p;
  p.max_worker_rss_mb = 0;
  WorkerUsage u;
  u.rss_bytes = kMax;
  EXPECT_EQ(reason_of(p, u), "<none>");
}

TEST(RecycleRules, GpuMemoryExactlyAtTheLimitIsNotOver) {
  Policy p;
  p.max_gpu_memory_mb = 2048;
  WorkerUsage u;
  u.gpu_bytes = 2048 * kMiB;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.gpu_bytes = 2048 * kMiB + 1;
  EXPECT_EQ(reason_of(p, u), "memory");
  // MiB, not MB.
  u.gpu_bytes = 2049ull * 1000 * 1000;
  EXPECT_EQ(reason_of(p, u), "<none>");
}

TEST(RecycleRules, GpuLimitZeroIsOff) {
  Policy p;
  p.max_gpu_memory_mb = 0;
  p.max_worker_rss_mb = 10;
  WorkerUsage u;
  u.gpu_bytes = kMax;
  EXPECT_EQ(reason_of(p, u), "<none>");
}

TEST(RecycleRules, RssAndGpuLimitsAreIndependent) {
  Policy p;
  p.max_worker_rss_mb = 100;
  p.max_gpu_memory_mb = 200;
  WorkerUsage u;
  // GPU bytes are not compared with the RSS limit, nor RSS with the GPU limit.
  u.rss_bytes = 150 * kMiB;
  EXPECT_EQ(reason_of(p, u), "memory");
  u.rss_bytes = 50 * kMiB;
  u.gpu_bytes = 150 * kMiB;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.gpu_bytes = 250 * kMiB;
  EXPECT_EQ(reason_of(p, u), "memory");
}

TEST(RecycleRules, MaxAgeAtOrPastTheLimit) {
  Policy p;
  p.max_worker_age_s = 3600;
  WorkerUsage u;
  u.age_s = 0;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.age_s = 3599.999;
  EXPECT_EQ(reason_of(p, u), "<none>");
  u.age_s = 3600.0;
  EXPECT_EQ(reason_of(p, u), "max_age");
  u.age_s = 3600.5;
  EXPECT_EQ(reason_of(p, u), "max_age");
  u.age_s = 1e12;
  EXPECT_EQ(reason_of(p, u), "max_age");
}

TEST(RecycleRules, MaxAgeZeroIsOff) {
  Policy p;
  p.max_worker_age_s = 0;
  WorkerUsage u;
  u.age_s = 1e12;
  EXPECT_EQ(reason_of(p, u), "<none>");
}

TEST(RecycleRules, MaxRequestsComesBeforeMemoryAndAge) {
  Policy p;
  p.max_requests = 5;
  p.max_worker_rss_mb = 1;
  p.max_gpu_memory_mb = 1;
  p.max_worker_age_s = 1;
  WorkerUsage u;
  u.request_limit = 5;
  u.served = 5;
  u.rss_bytes = 2 * kMiB;
  u.gpu_bytes = 2 * kMiB;
  u.age_s = 10;
  EXPECT_EQ(reason_of(p, u), "max_requests");
}

TEST(RecycleRules, MemoryComesBeforeAge) {
  Policy p;
  p.max_worker_rss_mb = 1;
  p.max_gpu_memory_mb = 1;
  p.max_worker_age_s = 1;
  WorkerUsage u;
  u.age_s = 10;
  u.rss_bytes = 2 * kMiB;
  EXPECT_EQ(reason_of(p, u), "memory");
  u.rss_bytes = 0;
  u.gpu_bytes = 2 * kMiB;
  EXPECT_EQ(reason_of(p, u), "memory");
  u.gpu_bytes = 0;
  EXPECT_EQ(reason_of(p, u), "max_age");
}

TEST(RecycleRules, LaterRulesStillApplyWhenEarlierOnesAreNotMet) {
  Policy p;
  p.max_requests = 100;
  p.max_worker_rss_mb = 100;
  p.max_worker_age_s = 60;
  WorkerUsage u;
  u.request_limit = 100;
  u.served = 3;
  u.rss_bytes = kMiB;
  u.age_s = 61;
  EXPECT_EQ(reason_of(p, u), "max_age");
  u.rss_bytes = 101 * kMiB;
  EXPECT_EQ(reason_of(p, u), "memory");
}

// --- draw_request_limit ---

TEST(RecycleRules, DrawRequestLimitIsZeroWhenMaxRequestsIsZero) {
  Policy p;
  p.max_requests = 0;
  p.max_requests_jitter = 0;
  EXPECT_EQ(draw_request_limit(p, 0), 0u);
  EXPECT_EQ(draw_request_limit(p, 12345), 0u);
  p.max_requests_jitter = 100;  // jitter alone does not turn the rule on
  for (std::uint64_t r : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{57}, kMax}) {
    EXPECT_EQ(draw_request_limit(p, r), 0u) << r;
  }
}

TEST(RecycleRules, DrawRequestLimitWithoutJitterIsExact) {
  Policy p;
  p.max_requests = 100;
  p.max_requests_jitter = 0;
  for (std::uint64_t r :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{99}, std::uint64_t{12345}, kMax}) {
    EXPECT_EQ(draw_request_limit(p, r), 100u) << r;
  }
}

TEST(RecycleRules, DrawRequestLimitStaysWithinMaxPlusJitter) {
  Policy p;
  p.max_requests = 100;
  p.max_requests_jitter = 10;
  std::set<std::uint64_t> seen;
  for (std::uint64_t r = 0; r < 1000; ++r) {
    const auto limit = draw_request_limit(p, r);
    EXPECT_GE(limit, 100u) << r;
    EXPECT_LE(limit, 110u) << r;
    seen.insert(limit);
  }
  // Every value of the range can be drawn, both ends included.
  EXPECT_EQ(seen.size(), 11u);
  EXPECT_EQ(*seen.begin(), 100u);
  EXPECT_EQ(*seen.rbegin(), 110u);
  for (std::uint64_t r : {kMax, kMax - 1, kMax / 2}) {
    const auto limit = draw_request_limit(p, r);
    EXPECT_GE(limit, 100u) << r;
    EXPECT_LE(limit, 110u) << r;
  }
}

TEST(RecycleRules, DrawRequestLimitWithJitterOne) {
  Policy p;
  p.max_requests = 1;
  p.max_requests_jitter = 1;
  EXPECT_EQ(draw_request_limit(p, 0), 1u);
  EXPECT_EQ(draw_request_limit(p, 1), 2u);
  EXPECT_EQ(draw_request_limit(p, 2), 1u);
}

TEST(RecycleRules, DrawRequestLimitAtTheKnobMaxima) {
  Policy p;
  p.max_requests = 1000000000000;         // 1e12, the knob's maximum
  p.max_requests_jitter = 1000000000000;  // same
  for (std::uint64_t r : {std::uint64_t{0}, std::uint64_t{999999999999}, kMax}) {
    const auto limit = draw_request_limit(p, r);
    EXPECT_GE(limit, 1000000000000u) << r;
    EXPECT_LE(limit, 2000000000000u) << r;
  }
  EXPECT_EQ(draw_request_limit(p, 1000000000000), 2000000000000u);
}

// --- failed_job_action ---

TEST(RecycleRules, FailedJobDefaultPolicy) {
  const Policy p;  // replay_limit 1, poison_threshold 2
  EXPECT_EQ(failed_job_action(p, 1, 0, true), FailedJobAction::replay);
  EXPECT_EQ(failed_job_action(p, 1, 1, true), FailedJobAction::fail);
  EXPECT_EQ(failed_job_action(p, 2, 0, true), FailedJobAction::quarantine);
  EXPECT_EQ(failed_job_action(p, 2, 1, true), FailedJobAction::quarantine);
}

TEST(RecycleRules, QuarantineAtThePoisonThreshold) {
  Policy p;
  p.poison_threshold = 3;
  p.replay_limit = 10;
  EXPECT_EQ(failed_job_action(p, 1, 0, true), FailedJobAction::replay);
  EXPECT_EQ(failed_job_action(p, 2, 1, true), FailedJobAction::replay);
  EXPECT_EQ(failed_job_action(p, 3, 2, true), FailedJobAction::quarantine);
  EXPECT_EQ(failed_job_action(p, 4, 3, true), FailedJobAction::quarantine);
}

TEST(RecycleRules, PoisonThresholdOneQuarantinesAtTheFirstFailure) {
  Policy p;
  p.poison_threshold = 1;
  p.replay_limit = 10;
  EXPECT_EQ(failed_job_action(p, 1, 0, true), FailedJobAction::quarantine);
}

// Outside SIGKILLs, hangs and deaths in a batch are no evidence against one request: however
// often it witnessed them, it is replayed or failed, never quarantined.
TEST(RecycleRules, NoQuarantineWithoutEvidence) {
  const Policy p;  // replay_limit 1, poison_threshold 2
  EXPECT_EQ(failed_job_action(p, 1, 0, false), FailedJobAction::replay);
  EXPECT_EQ(failed_job_action(p, 2, 1, false), FailedJobAction::fail);
  EXPECT_EQ(failed_job_action(p, 2, 0, false), FailedJobAction::replay);
  Policy one = p;
  one.poison_threshold = 1;
  EXPECT_EQ(failed_job_action(one, 5, 5, false), FailedJobAction::fail);
  // Evidence alone is not enough below the threshold.
  EXPECT_EQ(failed_job_action(p, 1, 0, true), FailedJobAction::replay);
}

TEST(RecycleRules, QuarantineComesBeforeReplayAndFail) {
  Policy p;
  p.poison_threshold = 2;
  p.replay_limit = 5;
  // Replays left, but the threshold is reached.
  EXPECT_EQ(failed_job_action(p, 2, 0, true), FailedJobAction::quarantine);
  // No replays left, and the threshold is reached.
  p.replay_limit = 0;
  EXPECT_EQ(failed_job_action(p, 2, 0, true), FailedJobAction::quarantine);
}

TEST(RecycleRules, ReplayWhileReplaysAreBelowTheLimit) {
  Policy p;
  p.poison_threshold = 100;
  p.replay_limit = 3;
  EXPECT_EQ(failed_job_action(p, 1, 0, true), FailedJobAction::replay);
  EXPECT_EQ(failed_job_action(p, 2, 1, true), FailedJobAction::replay);
  EXPECT_EQ(failed_job_action(p, 3, 2, true), FailedJobAction::replay);
  EXPECT_EQ(failed_job_action(p, 4, 3, true), FailedJobAction::fail);
  EXPECT_EQ(failed_job_action(p, 5, 4, true), FailedJobAction::fail);
}

TEST(RecycleRules, ReplayLimitZeroFailsAtOnce) {
  Policy p;
  p.replay_limit = 0;
  p.poison_threshold = 2;
  EXPECT_EQ(failed_job_action(p, 1, 0, true), FailedJobAction::fail);
}

// --- counts_for_breaker ---

TEST(RecycleRules, UnplannedFailuresCountForTheBreaker) {
  for (const char* reason : {"crash", "hang", "oom", "cuda_error", "protocol", "load_failure"}) {
    const auto parsed = recycle_reason_from_string(reason);
    ASSERT_TRUE(parsed) << reason;
    EXPECT_TRUE(counts_for_breaker(*parsed)) << reason;
  }
}

TEST(RecycleRules, OtherReasonsDoNotCountForTheBreaker) {
  for (const char* reason : {"timeout", "operator", "max_requests", "shutdown", "memory", "max_age",
                             "", "CRASH", "crash ", " crash", "crash\n", "load", "cuda"}) {
    const auto parsed = recycle_reason_from_string(reason);
    EXPECT_FALSE(parsed && counts_for_breaker(*parsed)) << "'" << reason << "'";
  }
}

}  // namespace
}  // namespace respawn
