// Tests for next-token sampling (worker/sampler.hpp).
#include "sampler.hpp"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace respawn::worker {
namespace {

TEST(Sampler, TemperatureZeroIsArgmax) {
  std::mt19937_64 rng(1);
  EXPECT_EQ(sample_token({0.1f, 3.0f, -2.0f, 2.9f}, 0.0, 1.0, rng), 1);
  EXPECT_EQ(sample_token({5.0f, 3.0f, -2.0f}, 0.0, 0.5, rng), 0);
  EXPECT_EQ(sample_token({-5.0f, -3.0f, -2.0f}, 0.0, 1.0, rng), 2);
  // Ties go to the lowest id.
  EXPECT_EQ(sample_token({1.0f, 4.0f, 4.0f}, 0.0, 1.0, rng), 1);
  // Negative temperature is treated as greedy too.
  EXPECT_EQ(sample_token({0.0f, 0.0f, 9.0f}, -1.0, 1.0, rng), 2);
}

TEST(Sampler, GreedyDoesNotConsumeRandomness) {
  std::mt19937_64 rng(99), fresh(99);
  for (int i = 0; i < 10; ++i) sample_token({1.0f, 2.0f}, 0.0, 1.0, rng);
  EXPECT_EQ(rng(), fresh());
}

TEST(Sampler, SingleLogitIsAlwaysChosen) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token({-100.0f}, 1.0, 1.0, rng), 0);
}

TEST(Sampler, SameSeedSameDraws) {
  const std::vector<float> logits = {0.0f, 0.5f, 1.0f, 0.2f, -0.3f, 0.9f, 0.1f, 0.4f};
  std::mt19937_64 a(12345), b(12345), c(54321);
  std::vector<int> draws_a, draws_b, draws_c;
  for (int i = 0; i < 200; ++i) {
    draws_a.push_back(sample_token(logits, 1.0, 0.95, a));
    draws_b.push_back(sample_token(logits, 1.0, 0.95, b));
    draws_c.push_back(sample_token(logits, 1.0, 0.95, c));
  }
  EXPECT_EQ(draws_a, draws_b);
  EXPECT_NE(draws_a, draws_c);  // 200 draws over 8 tokens: equal only by astronomic chance
  for (int t : draws_a) {
    EXPECT_GE(t, 0);
    EXPECT_LT(t, static_cast<int>(logits.size()));
  }
}

TEST(Sampler, TinyTopPAlwaysPicksTheArgmax) {
  const std::vector<float> logits = {1.0f, 1.2f, 0.9f, 1.1f};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(sample_token(logits, 5.0, 1e-6, rng), 1);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // Probabilities 0.5, 0.3, 0.2 (as logits of their logs). top_p 0.7 keeps {0, 1}.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  std::mt19937_64 rng(11);
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 5000; ++i) ++counts[sample_token(logits, 1.0, 0.7, rng)];
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[1], 0);
  // Renormalised over the nucleus: token 0 has 0.5 / 0.8 = 0.625.
  EXPECT_NEAR(counts[0] / 5000.0, 0.625, 0.03);
}

TEST(Sampler, FrequenciesMatchSoftmax) {
  // Two tokens whose logits differ by ln 3: softmax gives 0.25 / 0.75 at temperature 1.
  const std::vector<float> logits = {0.0f, static_cast<float>(std::log(3.0))};
  std::mt19937_64 rng(2024);
  const int n = 20000;
  int ones = 0;
  for (int i = 0; i < n; ++i) ones += sample_token(logits, 1.0, 1.0, rng);
  EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.02);
}

TEST(Sampler, TemperatureFlattensTheDistribution) {
  // At temperature 2 the same logits give sqrt(3) / (1 + sqrt(3)) ~ 0.634 for token 1.
  const std::vector<float> logits = {0.0f, static_cast<float>(std::log(3.0))};
  std::mt19937_64 rng(77);
  const int n = 20000;
  int ones = 0;
  for (int i = 0; i < n; ++i) ones += sample_token(logits, 2.0, 1.0, rng);
  const double expected = std::sqrt(3.0) / (1.0 + std::sqrt(3.0));
  EXPECT_NEAR(static_cast<double>(ones) / n, expected, 0.02);
}

TEST(Sampler, HugeLogitsDoNotOverflow) {
  // exp() of raw logits this large would be inf; the max is subtracted first.
  const std::vector<float> logits = {1000.0f, 1000.0f + static_cast<float>(std::log(3.0))};
  std::mt19937_64 rng(3);
  int ones = 0;
  for (int i = 0; i < 4000; ++i) ones += sample_token(logits, 1.0, 1.0, rng);
  EXPECT_NEAR(ones / 4000.0, 0.75, 0.04);
}

}  // namespace
}  // namespace respawn::worker
