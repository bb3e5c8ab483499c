// Tests for memory-aware admission (supervisor/lifecycle/memory_budget.hpp): the linear model
// peak = base + cost x weight, how cost is learned, and what is admitted or refused.
#include "lifecycle/memory_budget.hpp"

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

namespace respawn {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// limit 1000 bytes, base 100, cost learned as exactly 2 bytes per unit of weight: a total
// weight of up to 450 is admitted (100 + 2 x 450 = 1000).
MemoryBudget learned_budget() {
  MemoryBudget b;
  b.configure(1000, 0.0);
  b.observe(100, 200, 50);
  return b;
}

TEST(MemoryBudget, DisabledByDefault) {
  MemoryBudget b;
  EXPECT_FALSE(b.enabled());
  EXPECT_EQ(b.limit(), 0u);
  EXPECT_TRUE(b.admits(0, 1));
  EXPECT_TRUE(b.admits(1, 1)) << "no budget: no probe either";
  EXPECT_FALSE(b.never_fits(UINT64_MAX / 4).has_value());
}

TEST(MemoryBudget, DisabledAdmitsEverythingAndNeverRefuses) {
  MemoryBudget b;
  b.configure(0, 1.0);
  EXPECT_FALSE(b.enabled());
  b.set_base(500 * kMiB);
  b.observe(500 * kMiB, 900 * kMiB, 10);
  b.observe_oom(1);
  for (std::uint64_t inflight : {std::uint64_t{0}, std::uint64_t{1}, 1000 * kMiB}) {
    for (std::uint64_t weight : {std::uint64_t{0}, std::uint64_t{1}, 1000 * kMiB}) {
      EXPECT_TRUE(b.admits(inflight, weight)) << inflight << " + " << weight;
      EXPECT_FALSE(b.never_fits(weight).has_value()) << weight;
    }
  }
}

TEST(MemoryBudget, DisabledStatusIsNull) {
  MemoryBudget b;
  EXPECT_TRUE(b.status().is_null());
  b.configure(0, 1.0);
  EXPECT_TRUE(b.status().is_null());
}

TEST(MemoryBudget, BeforeTheFirstReportOnlyOneRequestAtATime) {
  MemoryBudget b;
  b.configure(100 * kMiB, 0.0);
  b.set_base(10 * kMiB);
  EXPECT_TRUE(b.enabled());
  EXPECT_FALSE(b.learned());
  // The probe: alone, any request runs, however heavy.
  EXPECT_TRUE(b.admits(0, 1));
  EXPECT_TRUE(b.admits(0, 1000 * kMiB));
  // Nothing joins it until it has reported.
  EXPECT_FALSE(b.admits(1, 1));
  EXPECT_FALSE(b.admits(1, 0));
  EXPECT_FALSE(b.admits(50, 1));
  // Unknown cost: nothing is refused as never fitting yet.
  EXPECT_FALSE(b.never_fits(1000 * kMiB).has_value());
}

TEST(MemoryBudget, BeforeTheFirstReportWithAFloorOnlyOneAtATimeToo) {
  MemoryBudget b;
  b.configure(100 * kMiB, 1.0);
  b.set_base(10 * kMiB);
  EXPECT_FALSE(b.learned());
  EXPECT_TRUE(b.admits(0, 5));
  EXPECT_FALSE(b.admits(5, 5)) << "the floor alone does not replace the probe";
}

TEST(MemoryBudget, ObserveLearnsTheCostPerUnitOfWeight) {
  MemoryBudget b;
  b.configure(1000 * kMiB, 0.0);
  EXPECT_EQ(b.cost(), 0.0);
  b.observe(100 * kMiB, 300 * kMiB, 100);  // 200 MiB for a weight of 100
  EXPECT_TRUE(b.learned());
  EXPECT_DOUBLE_EQ(b.cost(), 2.0 * kMiB);
  EXPECT_EQ(b.predicted_peak(10), 100 * kMiB + 20 * kMiB);
}

TEST(MemoryBudget, ObserveKeepsTheLargestCostAndNeverLowersIt) {
  MemoryBudget b;
  b.configure(1000 * kMiB, 0.0);
  b.observe(100 * kMiB, 300 * kMiB, 100);  // 2 MiB per unit
  b.observe(100 * kMiB, 150 * kMiB, 100);  // 0.5: lower, ignored
  EXPECT_DOUBLE_EQ(b.cost(), 2.0 * kMiB);
  b.observe(100 * kMiB, 50 * kMiB, 100);  // peak below base: no growth, still ignored
  EXPECT_DOUBLE_EQ(b.cost(), 2.0 * kMiB);
  b.observe(100 * kMiB, 100 * kMiB, 100);  // no growth at all
  EXPECT_DOUBLE_EQ(b.cost(), 2.0 * kMiB);
  b.observe(100 * kMiB, 500 * kMiB, 100);  // 4 MiB per unit: raised
  EXPECT_DOUBLE_EQ(b.cost(), 4.0 * kMiB);
  b.observe(0, 4 * kMiB, 1);  // 4 again: unchanged
  EXPECT_DOUBLE_EQ(b.cost(), 4.0 * kMiB);
  EXPECT_TRUE(b.learned());
}

TEST(MemoryBudget, AReportWithoutGrowthStillEndsTheProbe) {
  MemoryBudget b;
  b.configure(1000, 0.0);
  b.observe(100, 90, 10);
  EXPECT_TRUE(b.learned());
  EXPECT_EQ(b.cost(), 0.0);
  EXPECT_TRUE(b.admits(10, 10));
}

TEST(MemoryBudget, AReportOfNoWeightTeachesNothingButTheBase) {
  MemoryBudget b;
  b.configure(1000, 0.0);
  b.observe(300, 900, 0);
  EXPECT_FALSE(b.learned());
  EXPECT_EQ(b.cost(), 0.0);
  EXPECT_EQ(b.predicted_peak(0), 300u);
  EXPECT_FALSE(b.admits(1, 1));
}

TEST(MemoryBudget, MinCostIsAFloor) {
  MemoryBudget b;
  b.configure(1000 * kMiB, 1.0);
  EXPECT_DOUBLE_EQ(b.cost(), 1.0) << "the floor applies before any report";
  b.observe(0, 50, 100);  // 0.5 bytes per unit: below the floor
  EXPECT_TRUE(b.learned());
  EXPECT_DOUBLE_EQ(b.cost(), 1.0);
  b.observe(0, 300, 100);  // 3: above it
  EXPECT_DOUBLE_EQ(b.cost(), 3.0);
}

TEST(MemoryBudget, ReconfiguringDoesNotLowerALearnedCost) {
  MemoryBudget b;
  b.configure(1000 * kMiB, 0.0);
  b.observe(0, 300, 100);
  EXPECT_DOUBLE_EQ(b.cost(), 3.0);
  b.configure(2000 * kMiB, 1.0);
  EXPECT_DOUBLE_EQ(b.cost(), 3.0);
  EXPECT_EQ(b.limit(), 2000 * kMiB);
  EXPECT_TRUE(b.learned());
  b.configure(2000 * kMiB, 8.0);  // a higher floor raises it
  EXPECT_DOUBLE_EQ(b.cost(), 8.0);
}

TEST(MemoryBudget, AdmitsUpToTheLimitExactly) {
  MemoryBudget b = learned_budget();
  ASSERT_DOUBLE_EQ(b.cost(), 2.0);
  EXPECT_EQ(b.predicted_peak(450), 1000u);
  EXPECT_EQ(b.predicted_peak(451), 1002u);
  // base + cost x (inflight + weight) <= limit.
  EXPECT_TRUE(b.admits(400, 50));
  EXPECT_FALSE(b.admits(400, 51));
  EXPECT_TRUE(b.admits(1, 449));
  EXPECT_FALSE(b.admits(1, 450));
  EXPECT_TRUE(b.admits(449, 1));
  EXPECT_FALSE(b.admits(450, 1));
  EXPECT_TRUE(b.admits(450, 0));
  EXPECT_FALSE(b.admits(451, 0));
  // Alone, a request always runs (never_fits() is what refuses those that cannot).
  EXPECT_TRUE(b.admits(0, 100000));
}

TEST(MemoryBudget, ObserveMovesTheBase) {
  MemoryBudget b = learned_budget();
  b.observe(300, 310, 10);  // 1 per unit: the cost stays 2, the base is now 300
  EXPECT_DOUBLE_EQ(b.cost(), 2.0);
  EXPECT_EQ(b.predicted_peak(0), 300u);
  EXPECT_TRUE(b.admits(1, 349));  // 300 + 2 x 350 = 1000
  EXPECT_FALSE(b.admits(1, 350));
  b.observe(50, 60, 10);          // and back down
  EXPECT_TRUE(b.admits(1, 474));  // 50 + 2 x 475 = 1000
  EXPECT_FALSE(b.admits(1, 475));
}

TEST(MemoryBudget, OomStopsABatchThatHeavyButAdmitsALighterOne) {
  MemoryBudget b;
  b.configure(1000, 0.0);
  b.observe(100, 150, 50);  // cost 1: a total weight of 900 fits
  ASSERT_DOUBLE_EQ(b.cost(), 1.0);
  EXPECT_TRUE(b.admits(300, 300));
  b.observe_oom(600);  // but 600 ran out of memory
  EXPECT_GT(b.cost(), 1.5) << "cost must now predict 600 to be over the limit";
  EXPECT_GT(b.predicted_peak(600), b.limit());
  for (std::uint64_t inflight : {1u, 300u, 599u}) {
    EXPECT_FALSE(b.admits(inflight, 600 - inflight)) << inflight;
    EXPECT_FALSE(b.admits(inflight, 700 - inflight)) << inflight;
  }
  EXPECT_TRUE(b.admits(300, 200));
  EXPECT_TRUE(b.admits(1, 499));
  EXPECT_LE(b.predicted_peak(500), b.limit());
}

TEST(MemoryBudget, OomDuringTheProbeEndsItAndRefusesThatWeightForever) {
  MemoryBudget b;
  b.configure(1000, 0.0);
  b.set_base(100);
  b.observe_oom(600);  // the probe itself ran out of memory
  EXPECT_TRUE(b.learned());
  EXPECT_TRUE(b.never_fits(600).has_value());
  EXPECT_TRUE(b.never_fits(900).has_value());
  EXPECT_FALSE(b.never_fits(500).has_value());
  EXPECT_TRUE(b.admits(200, 200)) << "smaller batches may now run together";
  EXPECT_FALSE(b.admits(300, 300));
}

TEST(MemoryBudget, OomNeverLowersTheCost) {
  MemoryBudget b;
  b.configure(1000, 0.0);
  b.observe(100, 600, 100);  // cost 5: weight 180 fills the budget
  ASSERT_DOUBLE_EQ(b.cost(), 5.0);
  b.observe_oom(900);  // far heavier than anything admitted: nothing to learn
  EXPECT_DOUBLE_EQ(b.cost(), 5.0);
  b.observe_oom(0);
  EXPECT_DOUBLE_EQ(b.cost(), 5.0);
  b.observe_oom(100);  // 100 x 5 = 500 < 900 predicted fine, but it failed
  EXPECT_GT(b.cost(), 9.0);
  EXPECT_FALSE(b.admits(50, 50));
}

TEST(MemoryBudget, NeverFitsNamesTheBudgetInMiB) {
  MemoryBudget b;
  b.configure(100 * kMiB, 1.0);
  b.observe(10 * kMiB, 10 * kMiB + 64, 64);  // 1 byte per byte
  ASSERT_DOUBLE_EQ(b.cost(), 1.0);
  EXPECT_FALSE(b.never_fits(1).has_value());
  EXPECT_FALSE(b.never_fits(90 * kMiB).has_value()) << "exactly the budget fits";
  auto why = b.never_fits(90 * kMiB + 1);
  ASSERT_TRUE(why.has_value());
  why = b.never_fits(200 * kMiB);
  ASSERT_TRUE(why.has_value());
  EXPECT_TRUE(contains(*why, "100 MiB")) << *why;
  EXPECT_TRUE(contains(*why, "budget")) << *why;
  EXPECT_TRUE(contains(*why, "200 MiB")) << *why;  // what it needs
  EXPECT_TRUE(contains(*why, " 10 MiB")) << *why;  // what is in use
}

TEST(MemoryBudget, NeverFitsFollowsTheLearnedCost) {
  MemoryBudget b = learned_budget();  // up to 450 fits
  EXPECT_FALSE(b.never_fits(450).has_value());
  EXPECT_TRUE(b.never_fits(451).has_value());
  b.observe(100, 400, 50);  // cost 6: up to 150 fits
  EXPECT_FALSE(b.never_fits(150).has_value());
  EXPECT_TRUE(b.never_fits(151).has_value());
}

TEST(MemoryBudget, ANewWorkerKeepsTheLearnedCost) {
  MemoryBudget b = learned_budget();
  b.set_base(500);
  EXPECT_TRUE(b.learned());
  EXPECT_DOUBLE_EQ(b.cost(), 2.0);
  EXPECT_EQ(b.predicted_peak(10), 520u);
  EXPECT_TRUE(b.admits(1, 249));  // 500 + 2 x 250 = 1000
  EXPECT_FALSE(b.admits(1, 250));
  EXPECT_FALSE(b.never_fits(250).has_value());
  EXPECT_TRUE(b.never_fits(251).has_value());
}

TEST(MemoryBudget, StatusReportsTheModel) {
  MemoryBudget b;
  b.configure(1000, 0.0);
  b.set_base(100);
  auto s = b.status();
  ASSERT_TRUE(s.is_object()) << s.dump();
  EXPECT_EQ(s.at("limit_bytes"), 1000);
  EXPECT_EQ(s.at("base_bytes"), 100);
  EXPECT_EQ(s.at("cost_per_weight"), 0.0);
  EXPECT_EQ(s.at("learned"), false);

  b.observe(200, 500, 100);
  s = b.status();
  EXPECT_EQ(s.at("limit_bytes"), 1000);
  EXPECT_EQ(s.at("base_bytes"), 200);
  EXPECT_DOUBLE_EQ(s.at("cost_per_weight").get<double>(), 3.0);
  EXPECT_EQ(s.at("learned"), true);
}

// The fixed per-batch term: growth within it (an RSS page step) teaches no cost, and every
// prediction includes it.
TEST(MemoryBudget, SlackAbsorbsSmallGrowthAndIsPartOfEveryPrediction) {
  MemoryBudget b;
  b.configure(1000, 0.0, 100);
  b.set_base(200);
  b.observe(200, 290, 1);  // grew 90 < slack 100
  EXPECT_TRUE(b.learned());
  EXPECT_EQ(b.cost(), 0.0);
  EXPECT_EQ(b.predicted_peak(50), 300u);
  b.observe(200, 400, 10);  // grew 200: 100 over the slack, over 10 units of weight
  EXPECT_DOUBLE_EQ(b.cost(), 10.0);
  EXPECT_EQ(b.predicted_peak(70), 1000u);
  EXPECT_FALSE(b.never_fits(70).has_value());
  EXPECT_TRUE(b.never_fits(71).has_value());
  b.observe_oom(35);  // what did not fit is no longer admitted
  EXPECT_FALSE(b.admits(1, 34));
}

}  // namespace
}  // namespace respawn
