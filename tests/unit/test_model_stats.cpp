// Tests for the statistics extension's counters (supervisor/http/model_stats.hpp).
#include "http/model_stats.hpp"

#include <gtest/gtest.h>

namespace respawn {
namespace {

using std::chrono::nanoseconds;

TEST(ModelStats, EmptyHasTritonsShape) {
  const auto j = ModelStats().to_json("m", "1");
  EXPECT_EQ(j["name"], "m");
  EXPECT_EQ(j["version"], "1");
  EXPECT_EQ(j["inference_count"], 0);
  EXPECT_EQ(j["execution_count"], 0);
  EXPECT_EQ(j["last_inference"], 0);
  for (const char* key : {"success", "fail", "queue", "compute_input", "compute_infer",
                          "compute_output", "cache_hit", "cache_miss"}) {
    EXPECT_EQ(j["inference_stats"][key], (nlohmann::json{{"count", 0}, {"ns", 0}})) << key;
  }
  EXPECT_TRUE(j["batch_stats"].empty());
}

TEST(ModelStats, CountsSuccessesFailuresAndBatches) {
  ModelStats stats;
  const ModelStats::Compute batch{10, 100, 1000};
  // One batch of two and one of one, then a failure.
  stats.on_success(nanoseconds(500), nanoseconds(50), batch, 2);
  stats.on_success(nanoseconds(700), nanoseconds(70), batch, 2);
  stats.on_success(nanoseconds(300), std::nullopt, batch, 1);
  stats.on_failure(nanoseconds(42));
  const auto j = stats.to_json("m", "1");
  const auto& s = j["inference_stats"];
  EXPECT_EQ(s["success"], (nlohmann::json{{"count", 3}, {"ns", 1500}}));
  EXPECT_EQ(s["fail"], (nlohmann::json{{"count", 1}, {"ns", 42}}));
  EXPECT_EQ(s["queue"], (nlohmann::json{{"count", 2}, {"ns", 120}}));
  EXPECT_EQ(s["compute_infer"], (nlohmann::json{{"count", 3}, {"ns", 300}}));
  EXPECT_EQ(j["inference_count"], 3);
  EXPECT_EQ(j["execution_count"], 2);
  EXPECT_GT(j["last_inference"].get<std::int64_t>(), 0);
  ASSERT_EQ(j["batch_stats"].size(), 2u);
  EXPECT_EQ(j["batch_stats"][0]["batch_size"], 1);
  EXPECT_EQ(j["batch_stats"][1]["batch_size"], 2);
  EXPECT_EQ(j["batch_stats"][1]["compute_infer"], (nlohmann::json{{"count", 1}, {"ns", 100}}));
}

TEST(ModelStats, AnswersWithoutComputeTimesAreOneExecutionEach) {
  ModelStats stats;
  stats.on_success(nanoseconds(1), nanoseconds(1), std::nullopt, 4);
  stats.on_success(nanoseconds(1), nanoseconds(1), std::nullopt, 4);
  EXPECT_EQ(stats.to_json("m", "1")["execution_count"], 2);
}

TEST(ModelStats, ReadsTheWorkersComputeTimes) {
  EXPECT_FALSE(ModelStats::compute_from(nlohmann::json::object()));
  const auto c =
      ModelStats::compute_from({{"compute_ns", {{"input", 1}, {"infer", 2}, {"output", 3}}}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->input_ns, 1u);
  EXPECT_EQ(c->infer_ns, 2u);
  EXPECT_EQ(c->output_ns, 3u);
}

}  // namespace
}  // namespace respawn
