#include "respawn/json_util.hpp"

#include <gtest/gtest.h>

#include <string>

namespace respawn {
namespace {

TEST(JsonUtil, DepthCountsNestingAndIgnoresBracketsInStrings) {
  EXPECT_EQ(json_depth("1"), 0u);
  EXPECT_EQ(json_depth("[]"), 1u);
  EXPECT_EQ(json_depth(R"({"a":[[1],[2,[3]]]})"), 4u);
  EXPECT_EQ(json_depth(R"(["[[[[", "\"[[[", {}])"), 2u);
}

TEST(JsonUtil, ParseRefusesDocumentsNestedBeyondTheLimit) {
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  EXPECT_TRUE(parse_json(deep).is_discarded());
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_FALSE(parse_json(ok).is_discarded());
  // A million levels must not even reach the recursive parts of nlohmann::json.
  const std::string huge = std::string(1000000, '[');
  EXPECT_TRUE(parse_json(huge).is_discarded());
  EXPECT_TRUE(parse_json("{not json").is_discarded());
}

TEST(JsonUtil, GetReturnsTheFallbackOnAnyTypeMismatch) {
  const auto j = nlohmann::json::parse(R"({"s":"x","n":5,"b":true,"o":{}})");
  EXPECT_EQ(json_get<std::string>(j, "s", "d"), "x");
  EXPECT_EQ(json_get<std::string>(j, "n", "d"), "d");
  EXPECT_EQ(json_get(j, "n", 0), 5);
  EXPECT_EQ(json_get(j, "s", -1), -1);
  EXPECT_EQ(json_get(j, "b", false), true);
  EXPECT_EQ(json_get(j, "n", false), false);
  EXPECT_EQ(json_get(j, "missing", 7), 7);
  EXPECT_EQ(json_get(nlohmann::json::array(), "s", 3), 3);
  EXPECT_TRUE(json_field(j, "o").is_object());
  EXPECT_TRUE(json_field(j, "missing").is_null());
  EXPECT_TRUE(json_field(nlohmann::json(5), "s").is_null());
}

TEST(JsonUtil, ParseRefusesANulByteAnywhere) {
  // nlohmann's lexer takes a NUL for the end of the input: without the check this parses.
  EXPECT_TRUE(parse_json(std::string_view("{}\0garbage", 10)).is_discarded());
  EXPECT_TRUE(parse_json(std::string_view("{\"a\":\"\0\"}", 9)).is_discarded());
  EXPECT_FALSE(parse_json("{\"a\":\"\\u0000\"}").is_discarded()) << "an escaped NUL is fine";
}

TEST(JsonUtil, GetTakesOnlyIntegersInRangeForIntegralTypes) {
  const auto j = nlohmann::json::parse(
      R"({"big":1e19,"frac":1.9,"neg":-5,"huge":18446744073709551615,"ok":7,"i32":3000000000})");
  EXPECT_EQ(json_get<std::int64_t>(j, "big", -1), -1);   // a float out of range: no UB
  EXPECT_EQ(json_get<std::int64_t>(j, "frac", -1), -1);  // 1.9 is not 1
  EXPECT_EQ(json_get<std::int64_t>(j, "neg", 0), -5);
  EXPECT_EQ(json_get<std::uint64_t>(j, "neg", 1), 1u);
  EXPECT_EQ(json_get<std::int64_t>(j, "huge", 0), 0);
  EXPECT_EQ(json_get<std::uint64_t>(j, "huge", 0), 18446744073709551615ull);
  EXPECT_EQ(json_get<int>(j, "i32", 0), 0);
  EXPECT_EQ(json_get<unsigned>(j, "i32", 0), 3000000000u);
  EXPECT_EQ(json_get<int>(j, "ok", 0), 7);
  EXPECT_DOUBLE_EQ(json_get<double>(j, "frac", 0), 1.9);
  EXPECT_DOUBLE_EQ(json_get<double>(j, "ok", 0), 7.0);
}

}  // namespace
}  // namespace respawn
