// Tests for generation parameters (common/respawn/generate_request.hpp).
#include "respawn/generate_request.hpp"

#include <string>

#include <gtest/gtest.h>

namespace respawn {
namespace {

using nlohmann::json;

Result<GenerateRequest> parse(const std::string& params_text, const GenerateLimits& limits = {}) {
  return parse_generate_request("hi", json::parse(params_text), limits);
}

// Expects a bad_input error whose message names `field`.
void expect_rejected(const std::string& params_text, const std::string& field) {
  auto r = parse(params_text);
  ASSERT_FALSE(r.ok()) << params_text << " was accepted";
  EXPECT_EQ(r.error().kind, ErrorKind::bad_input) << params_text;
  EXPECT_NE(r.error().message.find("'" + field + "'"), std::string::npos)
      << params_text << " -> " << r.error().message;
}

TEST(GenerateRequest, Defaults) {
  auto r = parse_generate_request("the prompt", json::object());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->prompt, "the prompt");
  EXPECT_EQ(r->max_tokens, 16);
  EXPECT_EQ(r->temperature, 0.0);
  EXPECT_EQ(r->top_p, 1.0);
  EXPECT_FALSE(r->seed.has_value());
  EXPECT_TRUE(r->stop.empty());

  const GenerateRequest plain;
  EXPECT_EQ(plain.max_tokens, 16);
  EXPECT_EQ(plain.temperature, 0.0);
  EXPECT_EQ(plain.top_p, 1.0);
  const GenerateLimits limits;
  EXPECT_EQ(limits.max_tokens, 4096);
  EXPECT_EQ(limits.max_prompt_bytes, std::size_t{1} << 20);
  EXPECT_EQ(limits.max_stop_strings, 8u);
}

TEST(GenerateRequest, AllFieldsAreRead) {
  auto r = parse(R"({"max_tokens":100,"temperature":0.7,"top_p":0.9,"seed":42,"stop":["\n","END"],
                    "unknown_key":true})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->max_tokens, 100);
  EXPECT_DOUBLE_EQ(r->temperature, 0.7);
  EXPECT_DOUBLE_EQ(r->top_p, 0.9);
  ASSERT_TRUE(r->seed.has_value());
  EXPECT_EQ(*r->seed, 42u);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"\n", "END"}));
}

TEST(GenerateRequest, NullMeansDefault) {
  auto r = parse(R"({"max_tokens":null,"temperature":null,"top_p":null,"seed":null,"stop":null})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->max_tokens, 16);
  EXPECT_EQ(r->top_p, 1.0);
  EXPECT_FALSE(r->seed.has_value());
}

TEST(GenerateRequest, ParamsMustBeAnObject) {
  for (const auto& params : {json::array(), json(3), json("x"), json()}) {
    auto r = parse_generate_request("hi", params);
    ASSERT_FALSE(r.ok()) << params.dump();
    EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
  }
}

TEST(GenerateRequest, MaxTokensBounds) {
  expect_rejected(R"({"max_tokens":0})", "max_tokens");
  expect_rejected(R"({"max_tokens":-3})", "max_tokens");
  expect_rejected(R"({"max_tokens":5000})", "max_tokens");
  expect_rejected(R"({"max_tokens":"x"})", "max_tokens");
  expect_rejected(R"({"max_tokens":"10"})", "max_tokens");
  expect_rejected(R"({"max_tokens":1.5})", "max_tokens");
  expect_rejected(R"({"max_tokens":true})", "max_tokens");
  // Too large to fit in int64: must not wrap around into the valid range.
  expect_rejected(R"({"max_tokens":18446744073709551615})", "max_tokens");
  expect_rejected(R"({"max_tokens":4294967297})", "max_tokens");

  auto one = parse(R"({"max_tokens":1})");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->max_tokens, 1);
  auto most = parse(R"({"max_tokens":4096})");
  ASSERT_TRUE(most.ok());
  EXPECT_EQ(most->max_tokens, 4096);
}

TEST(GenerateRequest, MaxTokensFollowsTheLimit) {
  GenerateLimits limits;
  limits.max_tokens = 10;
  EXPECT_TRUE(parse(R"({"max_tokens":10})", limits).ok());
  auto r = parse(R"({"max_tokens":11})", limits);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("10"), std::string::npos) << r.error().message;
}

TEST(GenerateRequest, Temperature) {
  expect_rejected(R"({"temperature":-1})", "temperature");
  expect_rejected(R"({"temperature":-0.001})", "temperature");
  expect_rejected(R"({"temperature":100.5})", "temperature");
  expect_rejected(R"({"temperature":"hot"})", "temperature");
  auto zero = parse(R"({"temperature":0})");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->temperature, 0.0);
  auto two = parse(R"({"temperature":2})");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->temperature, 2.0);
}

TEST(GenerateRequest, TopP) {
  expect_rejected(R"({"top_p":0})", "top_p");
  expect_rejected(R"({"top_p":0.0})", "top_p");
  expect_rejected(R"({"top_p":1.5})", "top_p");
  expect_rejected(R"({"top_p":-0.5})", "top_p");
  expect_rejected(R"({"top_p":[1]})", "top_p");
  auto tiny = parse(R"({"top_p":1e-9})");
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->top_p, 1e-9);
  auto one = parse(R"({"top_p":1})");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->top_p, 1.0);
}

TEST(GenerateRequest, Seed) {
  expect_rejected(R"({"seed":-1})", "seed");
  expect_rejected(R"({"seed":1.5})", "seed");
  expect_rejected(R"({"seed":"7"})", "seed");
  auto zero = parse(R"({"seed":0})");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->seed, std::uint64_t{0});
  auto max = parse(R"({"seed":18446744073709551615})");
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(max->seed, std::uint64_t{18446744073709551615u});
  // A seed built in code as a signed integer is fine when it is non-negative.
  auto built = parse_generate_request("p", json{{"seed", 5}});
  ASSERT_TRUE(built.ok());
  EXPECT_EQ(built->seed, std::uint64_t{5});
}

TEST(GenerateRequest, StopAsString) {
  auto r = parse(R"({"stop":"\n\n"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stop, (std::vector<std::string>{"\n\n"}));
  // An empty stop string would match everywhere: it is dropped.
  auto empty = parse(R"({"stop":""})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->stop.empty());
}

TEST(GenerateRequest, StopAsArray) {
  auto r = parse(R"({"stop":["a","","b"]})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stop, (std::vector<std::string>{"a", "b"}));
  auto none = parse(R"({"stop":[]})");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->stop.empty());
}

TEST(GenerateRequest, StopRejectsNonStrings) {
  expect_rejected(R"({"stop":["a",1]})", "stop");
  expect_rejected(R"({"stop":[null]})", "stop");
  expect_rejected(R"({"stop":[["a"]]})", "stop");
  expect_rejected(R"({"stop":5})", "stop");
  expect_rejected(R"({"stop":{"a":"b"}})", "stop");
}

TEST(GenerateRequest, StopRejectsTooMany) {
  expect_rejected(R"({"stop":["1","2","3","4","5","6","7","8","9"]})", "stop");
  EXPECT_TRUE(parse(R"({"stop":["1","2","3","4","5","6","7","8"]})").ok());
  GenerateLimits limits;
  limits.max_stop_strings = 1;
  EXPECT_FALSE(parse(R"({"stop":["a","b"]})", limits).ok());
}

TEST(GenerateRequest, PromptLengthLimit) {
  GenerateLimits limits;
  limits.max_prompt_bytes = 4;
  EXPECT_TRUE(parse_generate_request("abcd", json::object(), limits).ok());
  auto r = parse_generate_request("abcde", json::object(), limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
  EXPECT_NE(r.error().message.find("'prompt'"), std::string::npos) << r.error().message;
}

TEST(GenerateRequest, JsonRoundTrip) {
  GenerateRequest in;
  in.prompt = "Once upon a time \xE2\x82\xAC";
  in.max_tokens = 77;
  in.temperature = 0.35;
  in.top_p = 0.8;
  in.seed = 123456789012345ull;
  in.stop = {"\n", "The End"};
  const json j = to_json(in);
  EXPECT_EQ(j["prompt"], in.prompt);
  EXPECT_EQ(j["seed"], 123456789012345ull);

  auto out = generate_request_from_json(json::parse(j.dump()));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->prompt, in.prompt);
  EXPECT_EQ(out->max_tokens, in.max_tokens);
  EXPECT_EQ(out->temperature, in.temperature);
  EXPECT_EQ(out->top_p, in.top_p);
  EXPECT_EQ(out->seed, in.seed);
  EXPECT_EQ(out->stop, in.stop);
}

TEST(GenerateRequest, JsonRoundTripWithoutSeed) {
  GenerateRequest in;
  in.prompt = "";
  const json j = to_json(in);
  EXPECT_FALSE(j.contains("seed"));
  auto out = generate_request_from_json(j);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->prompt, "");
  EXPECT_FALSE(out->seed.has_value());
  EXPECT_EQ(out->max_tokens, 16);
  EXPECT_TRUE(out->stop.empty());
}

TEST(GenerateRequest, FromJsonNeedsAStringPrompt) {
  for (const char* text : {R"({})", R"({"prompt":3})", R"([])", R"({"prompt":null})"}) {
    auto r = generate_request_from_json(json::parse(text));
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
    EXPECT_NE(r.error().message.find("prompt"), std::string::npos);
  }
  // The IPC form is validated like the HTTP form.
  auto bad = generate_request_from_json(json::parse(R"({"prompt":"p","max_tokens":0})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'max_tokens'"), std::string::npos);
}

}  // namespace
}  // namespace respawn
