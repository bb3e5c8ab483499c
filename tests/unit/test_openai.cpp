// Tests for the OpenAI-compatible request and response shapes (supervisor/http/openai.hpp):
// what parse_request accepts, maps, ignores and refuses, the chat template, and the exact JSON
// of answers, stream chunks, errors and the model list. The routes end to end are in
// tests/integration/test_openai.cpp.
#include "http/openai.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace respawn {
namespace {

using nlohmann::json;
using openai::Kind;

const std::string kModel = "demo";

Result<openai::Request> parse(Kind kind, const std::string& body_text) {
  return openai::parse_request(kind, json::parse(body_text), kModel);
}

// Expects a bad_input error whose message names `param` (quoted) and contains `phrase`.
void expect_bad_input(Kind kind, const std::string& body_text, const std::string& param,
                      const std::string& phrase) {
  auto r = parse(kind, body_text);
  ASSERT_FALSE(r.ok()) << body_text << " was accepted";
  EXPECT_EQ(r.error().kind, ErrorKind::bad_input) << body_text;
  EXPECT_NE(r.error().message.find("'" + param + "'"), std::string::npos)
      << body_text << " -> " << r.error().message;
  EXPECT_NE(r.error().message.find(phrase), std::string::npos)
      << body_text << " -> " << r.error().message;
}

void expect_chat_prompt_refused(const json& messages, const std::string& phrase) {
  auto r = openai::chat_prompt(messages);
  ASSERT_FALSE(r.ok()) << messages.dump() << " was accepted as " << *r;
  EXPECT_EQ(r.error().kind, ErrorKind::bad_input) << messages.dump();
  EXPECT_NE(r.error().message.find("'messages'"), std::string::npos)
      << messages.dump() << " -> " << r.error().message;
  EXPECT_NE(r.error().message.find(phrase), std::string::npos)
      << messages.dump() << " -> " << r.error().message;
}

const json kHello = json::array({{{"role", "user"}, {"content", "Hello"}}});

std::string chat_body(const json& extra) {
  json body = {{"messages", kHello}};
  body.update(extra);
  return body.dump();
}

const openai::Ids kCompletionIds{"cmpl-1700000000-7", 1700000000, "demo"};
const openai::Ids kChatIds{"chatcmpl-1700000000-8", 1700000001, "demo"};

const json kResult = {
    {"text_output", "Hi there"},
    {"finish_reason", "length"},
    {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 3}, {"total_tokens", 8}}}};

// --- parse_request: what is accepted and mapped ---

TEST(OpenAiTranslation, ACompletionGetsOpenAisDefaults) {
  auto r = parse(Kind::completion, R"({"prompt":"Hello"})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->params.prompt, "Hello");
  EXPECT_EQ(r->params.max_tokens, 16);
  EXPECT_EQ(r->params.temperature, 1.0);  // not the /v2 routes' greedy 0
  EXPECT_EQ(r->params.top_p, 1.0);
  EXPECT_FALSE(r->params.seed.has_value());
  EXPECT_TRUE(r->params.stop.empty());
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->include_usage);
}

TEST(OpenAiTranslation, AChatGetsOpenAisDefaultsAndStopsAtTheNextUserTurn) {
  auto r = parse(Kind::chat, chat_body(json::object()));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->params.prompt, "user: Hello\nassistant:");
  EXPECT_EQ(r->params.max_tokens, 256);
  EXPECT_EQ(r->params.temperature, 1.0);
  EXPECT_EQ(r->params.top_p, 1.0);
  EXPECT_FALSE(r->params.seed.has_value());
  EXPECT_EQ(r->params.stop, std::vector<std::string>{"\nuser:"});
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->include_usage);
}

TEST(OpenAiTranslation, TheSamplingFieldsOfACompletionAreMapped) {
  auto r = parse(Kind::completion, R"({"model":"demo","prompt":"Once","max_tokens":100,
      "temperature":0,"top_p":0.5,"seed":42,"stop":["END","\n\n"],"n":1})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->params.prompt, "Once");
  EXPECT_EQ(r->params.max_tokens, 100);
  EXPECT_EQ(r->params.temperature, 0.0);
  EXPECT_DOUBLE_EQ(r->params.top_p, 0.5);
  ASSERT_TRUE(r->params.seed.has_value());
  EXPECT_EQ(*r->params.seed, 42u);
  EXPECT_EQ(r->params.stop, (std::vector<std::string>{"END", "\n\n"}));
}

TEST(OpenAiTranslation, TheSamplingFieldsOfAChatAreMappedAndTheTurnMarkerComesLast) {
  auto r = parse(Kind::chat, chat_body({{"max_tokens", 9},
                                        {"temperature", 1.5},
                                        {"top_p", 0.25},
                                        {"seed", 18446744073709551615u},
                                        {"stop", "END"}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->params.max_tokens, 9);
  EXPECT_DOUBLE_EQ(r->params.temperature, 1.5);
  EXPECT_DOUBLE_EQ(r->params.top_p, 0.25);
  ASSERT_TRUE(r->params.seed.has_value());
  EXPECT_EQ(*r->params.seed, 18446744073709551615u);
  EXPECT_EQ(r->params.stop, (std::vector<std::string>{"END", "\nuser:"}));
}

TEST(OpenAiTranslation, EmptyStopStringsAreDropped) {
  auto one = parse(Kind::completion, R"({"prompt":"x","stop":""})");
  ASSERT_TRUE(one.ok()) << one.error().message;
  EXPECT_TRUE(one->params.stop.empty());
  auto some = parse(Kind::completion, R"({"prompt":"x","stop":["","a",""]})");
  ASSERT_TRUE(some.ok()) << some.error().message;
  EXPECT_EQ(some->params.stop, std::vector<std::string>{"a"});
}

TEST(OpenAiTranslation, NullFieldsMeanTheDefaults) {
  const json nulls = {
      {"max_tokens", nullptr}, {"temperature", nullptr},    {"top_p", nullptr},
      {"seed", nullptr},       {"stop", nullptr},           {"n", nullptr},
      {"stream", nullptr},     {"stream_options", nullptr}, {"max_completion_tokens", nullptr}};
  json completion = nulls;
  completion["prompt"] = "x";
  auto c = openai::parse_request(Kind::completion, completion, kModel);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->params.max_tokens, 16);
  EXPECT_EQ(c->params.temperature, 1.0);
  EXPECT_EQ(c->params.top_p, 1.0);
  EXPECT_FALSE(c->params.seed.has_value());
  EXPECT_TRUE(c->params.stop.empty());
  EXPECT_FALSE(c->stream);
  EXPECT_FALSE(c->include_usage);

  auto chat = parse(Kind::chat, chat_body(nulls));
  ASSERT_TRUE(chat.ok()) << chat.error().message;
  EXPECT_EQ(chat->params.max_tokens, 256);
  EXPECT_EQ(chat->params.temperature, 1.0);
  EXPECT_EQ(chat->params.stop, std::vector<std::string>{"\nuser:"});
}

TEST(OpenAiTranslation, APromptArrayOfOneStringIsThatString) {
  auto r = parse(Kind::completion, R"({"prompt":["Hello there"]})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->params.prompt, "Hello there");
  auto empty = parse(Kind::completion, R"({"prompt":""})");
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  EXPECT_EQ(empty->params.prompt, "");
}

TEST(OpenAiTranslation, ChatTakesMaxCompletionTokensOverMaxTokens) {
  auto alone = parse(Kind::chat, chat_body({{"max_completion_tokens", 7}}));
  ASSERT_TRUE(alone.ok()) << alone.error().message;
  EXPECT_EQ(alone->params.max_tokens, 7);
  auto both = parse(Kind::chat, chat_body({{"max_tokens", 5}, {"max_completion_tokens", 7}}));
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ(both->params.max_tokens, 7);
  auto null = parse(Kind::chat, chat_body({{"max_tokens", 5}, {"max_completion_tokens", nullptr}}));
  ASSERT_TRUE(null.ok()) << null.error().message;
  EXPECT_EQ(null->params.max_tokens, 5);
  // Out of range or not an integer it is refused, by its own name (a string was ignored, and
  // a range error named max_tokens).
  for (const json& wrong : {json(0), json(4097), json(1.5), json("7"), json::array({7})}) {
    expect_bad_input(Kind::chat, chat_body({{"max_completion_tokens", wrong}}),
                     "max_completion_tokens", "must be an integer between 1 and 4096");
  }
}

TEST(OpenAiTranslation, ACompletionIgnoresMaxCompletionTokens) {
  auto r = parse(Kind::completion, R"({"prompt":"x","max_completion_tokens":7})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->params.max_tokens, 16);
  auto both = parse(Kind::completion, R"({"prompt":"x","max_tokens":3,"max_completion_tokens":7})");
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ(both->params.max_tokens, 3);
}

TEST(OpenAiTranslation, MaxTokensRunsFromOneTo4096) {
  for (const auto kind : {Kind::completion, Kind::chat}) {
    const std::string most = kind == Kind::chat ? chat_body({{"max_tokens", 4096}})
                                                : R"({"prompt":"x","max_tokens":4096})";
    auto r = parse(kind, most);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->params.max_tokens, 4096);
    const std::string one =
        kind == Kind::chat ? chat_body({{"max_tokens", 1}}) : R"({"prompt":"x","max_tokens":1})";
    auto least = parse(kind, one);
    ASSERT_TRUE(least.ok()) << least.error().message;
    EXPECT_EQ(least->params.max_tokens, 1);
  }
  expect_bad_input(Kind::completion, R"({"prompt":"x","max_tokens":4097})", "max_tokens",
                   "must be an integer between 1 and 4096");
  expect_bad_input(Kind::chat, chat_body({{"max_tokens", 4097}}), "max_tokens",
                   "must be an integer between 1 and 4096");
}

TEST(OpenAiTranslation, StreamIsABooleanAndIncludeUsageComesFromStreamOptions) {
  auto on = parse(Kind::completion,
                  R"({"prompt":"x","stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_TRUE(on.ok()) << on.error().message;
  EXPECT_TRUE(on->stream);
  EXPECT_TRUE(on->include_usage);
  auto chat = parse(Kind::chat, chat_body({{"stream", true}}));
  ASSERT_TRUE(chat.ok()) << chat.error().message;
  EXPECT_TRUE(chat->stream);
  EXPECT_FALSE(chat->include_usage);
  auto off = parse(Kind::completion, R"({"prompt":"x","stream":false,"stream_options":null})");
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_FALSE(off->stream);
  EXPECT_FALSE(off->include_usage);
  // As OpenAI: stream_options only with stream true.
  expect_bad_input(Kind::completion,
                   R"({"prompt":"x","stream":false,"stream_options":{"include_usage":false}})",
                   "stream_options", "is only allowed when 'stream' is true");
}

TEST(OpenAiTranslation, MalformedStreamOptionsAreIgnored) {
  for (const char* options : {R"(5)", R"("yes")", R"([true])", R"({"include_usage":"yes"})",
                              R"({"include_usage":1})", R"({})"}) {
    const std::string body =
        std::string(R"({"prompt":"x","stream":true,"stream_options":)") + options + "}";
    auto r = parse(Kind::completion, body);
    ASSERT_TRUE(r.ok()) << body << " -> " << r.error().message;
    EXPECT_TRUE(r->stream) << body;
    EXPECT_FALSE(r->include_usage) << body;
  }
}

TEST(OpenAiTranslation, TheDocumentedIgnoredFieldsChangeNothing) {
  // Harmless values of what the server cannot honour, and fields that do not matter to it.
  const json ignored = {{"presence_penalty", 0},        {"frequency_penalty", 0.0},
                        {"logit_bias", json::object()}, {"user", "someone"},
                        {"metadata", {{"a", "b"}}},     {"n", 1}};
  for (const auto kind : {Kind::completion, Kind::chat}) {
    json plain = kind == Kind::chat ? json{{"messages", kHello}} : json{{"prompt", "Hello"}};
    plain["max_tokens"] = 12;
    plain["seed"] = 3;
    json noisy = plain;
    noisy.update(ignored);
    if (kind == Kind::chat) {
      noisy["tools"] = json::array();
      noisy["tool_choice"] = "none";
      noisy["response_format"] = {{"type", "text"}};
    } else {
      noisy["echo"] = false;
      noisy["best_of"] = 1;
      noisy["suffix"] = "";
    }
    auto a = openai::parse_request(kind, plain, kModel);
    auto b = openai::parse_request(kind, noisy, kModel);
    ASSERT_TRUE(a.ok()) << a.error().message;
    ASSERT_TRUE(b.ok()) << noisy.dump() << " -> " << b.error().message;
    EXPECT_EQ(to_json(b->params), to_json(a->params)) << noisy.dump();
    EXPECT_EQ(b->stream, a->stream);
    EXPECT_EQ(b->include_usage, a->include_usage);
  }
}

TEST(OpenAiTranslation, WhatTheServerCannotHonourIsA400NamingTheParam) {
  const std::vector<std::pair<json, std::string>> chat_refusals = {
      {{{"tools", json::array({{{"type", "function"}}})}}, "tools"},
      {{{"tool_choice", "auto"}}, "tool_choice"},
      {{{"response_format", {{"type", "json_object"}}}}, "response_format"},
      {{{"presence_penalty", 1.5}}, "presence_penalty"},
      {{{"frequency_penalty", -1}}, "frequency_penalty"},
      {{{"logit_bias", {{"50256", -100}}}}, "logit_bias"},
      {{{"functions", json::array()}}, "functions"},
      {{{"n", 2}}, "n"},
  };
  for (const auto& [field, param] : chat_refusals) {
    json body = {{"messages", kHello}};
    body.update(field);
    auto r = openai::parse_request(Kind::chat, body, kModel);
    ASSERT_FALSE(r.ok()) << body.dump();
    EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
    EXPECT_EQ(openai::error_body(400, r.error().message)["error"]["param"], param) << body.dump();
  }
  for (const auto& [field, param] :
       std::vector<std::pair<json, std::string>>{{{{"best_of", 3}}, "best_of"},
                                                 {{{"echo", true}}, "echo"},
                                                 {{{"suffix", "!"}}, "suffix"}}) {
    json body = {{"prompt", "Hello"}};
    body.update(field);
    auto r = openai::parse_request(Kind::completion, body, kModel);
    ASSERT_FALSE(r.ok()) << body.dump();
    EXPECT_EQ(openai::error_body(400, r.error().message)["error"]["param"], param) << body.dump();
  }
  // OpenAI's ranges.
  expect_bad_input(Kind::chat, chat_body({{"temperature", 2.5}}), "temperature",
                   "must be between 0 and 2");
  expect_bad_input(Kind::chat, chat_body({{"presence_penalty", 3}}), "presence_penalty",
                   "must be a number between -2 and 2");
}

TEST(OpenAiTranslation, ACompletionPromptMayBeTokenIds) {
  auto r = parse(Kind::completion, R"({"prompt":[15496, 995]})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->params.prompt_ids, (std::vector<std::int64_t>{15496, 995}));
  EXPECT_EQ(r->params.prompt, "");
  r = parse(Kind::completion, R"({"prompt":[[7, 8]]})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->params.prompt_ids, (std::vector<std::int64_t>{7, 8}));
  expect_bad_input(Kind::completion, R"({"prompt":[1, -2]})", "prompt", "token ids");
  expect_bad_input(Kind::completion, R"({"prompt":[1, 2.5]})", "prompt", "token ids");
  expect_bad_input(Kind::completion, R"({"prompt":[[1], [2]]})", "prompt", "must be a string");
  expect_bad_input(Kind::completion, R"({"prompt":[]})", "prompt", "must be a string");
  const json too_many = {{"prompt", std::vector<int>(GenerateLimits{}.max_prompt_bytes + 1, 7)}};
  expect_bad_input(Kind::completion, too_many.dump(), "prompt", "holds more than 1048576");
}

TEST(OpenAiTranslation, LogprobsAskForTheChosenTokensAndTheMostLikelyOnes) {
  EXPECT_EQ(parse(Kind::chat, chat_body(json::object()))->params.logprobs, -1);
  EXPECT_EQ(parse(Kind::chat, chat_body({{"logprobs", true}}))->params.logprobs, 0);
  EXPECT_EQ(
      parse(Kind::chat, chat_body({{"logprobs", true}, {"top_logprobs", 20}}))->params.logprobs,
      20);
  EXPECT_EQ(parse(Kind::completion, R"({"prompt":"x","logprobs":3})")->params.logprobs, 3);
  expect_bad_input(Kind::chat, chat_body({{"top_logprobs", 2}}), "top_logprobs",
                   "needs 'logprobs' set to true");
  expect_bad_input(Kind::chat, chat_body({{"logprobs", true}, {"top_logprobs", 21}}),
                   "top_logprobs", "must be an integer between 0 and 20");
  expect_bad_input(Kind::completion, R"({"prompt":"x","logprobs":6})", "logprobs",
                   "must be an integer between 0 and 5");
  // Streamed too: each chunk carries its tokens' logprobs.
  EXPECT_EQ(parse(Kind::chat, chat_body({{"logprobs", true}, {"stream", true}}))->params.logprobs,
            0);
}

TEST(OpenAiTranslation, LogprobsTakeTheShapeOfEachApi) {
  const json entries = json::parse(R"([[72, -0.5, [[72, -0.5], [101, -1.5]]], [105, -0.25, []]])");
  const auto text = [](std::int64_t id) { return std::string(1, static_cast<char>(id)); };
  EXPECT_EQ(openai::logprobs(Kind::chat, entries, text), json::parse(R"({"refusal": null,
      "content": [{"token": "H", "logprob": -0.5, "bytes": [72],
                   "top_logprobs": [{"token": "H", "logprob": -0.5, "bytes": [72]},
                                    {"token": "e", "logprob": -1.5, "bytes": [101]}]},
                  {"token": "i", "logprob": -0.25, "bytes": [105], "top_logprobs": []}]})"));
  EXPECT_EQ(openai::logprobs(Kind::completion, entries, text), json::parse(R"({
      "tokens": ["H", "i"], "token_logprobs": [-0.5, -0.25],
      "top_logprobs": [{"H": -0.5, "e": -1.5}, {}], "text_offset": [0, 1]})"));
  // Part of a UTF-8 sequence: the bytes exactly, the token as text.
  const auto half = [](std::int64_t) { return std::string("\xE2\x82"); };
  const auto one = openai::logprobs(Kind::chat, json::parse(R"([[1, -1.0, []]])"), half);
  EXPECT_EQ(one["content"][0]["bytes"], json({0xE2, 0x82}));
  EXPECT_EQ(one["content"][0]["token"], "\xEF\xBF\xBD");
}

TEST(OpenAiTranslation, TheServedModelOrNoModelIsAccepted) {
  EXPECT_TRUE(parse(Kind::completion, R"({"model":"demo","prompt":"x"})").ok());
  EXPECT_TRUE(parse(Kind::completion, R"({"prompt":"x"})").ok());
  EXPECT_TRUE(parse(Kind::chat, chat_body({{"model", "demo"}})).ok());
  EXPECT_TRUE(parse(Kind::chat, chat_body(json::object())).ok());
}

TEST(OpenAiTranslation, AnotherModelIsNotFoundBeforeAnythingElseIsChecked) {
  for (const auto kind : {Kind::completion, Kind::chat}) {
    // No prompt nor messages, n = 3: the model is what the client hears about.
    for (const char* body : {R"({"model":"gpt-4o","n":3})", R"({"model":"Demo","prompt":"x"})",
                             R"({"model":"demo ","messages":[]})"}) {
      auto r = parse(kind, body);
      ASSERT_FALSE(r.ok()) << body;
      EXPECT_EQ(r.error().kind, ErrorKind::not_found) << body;
      EXPECT_NE(r.error().message.find("does not exist; this server serves 'demo'"),
                std::string::npos)
          << r.error().message;
    }
  }
  auto r = parse(Kind::chat, R"({"model":"gpt-4o"})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "The model 'gpt-4o' does not exist; this server serves 'demo'");
}

TEST(OpenAiTranslation, AModelThatIsNotAStringIsRefused) {
  for (const char* body : {R"({"model":42,"prompt":"x"})", R"({"model":["demo"],"prompt":"x"})",
                           R"({"model":{"id":"demo"},"prompt":"x"})"}) {
    expect_bad_input(Kind::completion, body, "model", "must be a string");
  }
}

// A null model is absent, as every other null field is (NullFieldsMeanTheDefaults); it was
// answered 404 "The model '' does not exist".
TEST(OpenAiTranslation, ANullModelMeansNoModel) {
  auto r = parse(Kind::completion, R"({"model":null,"prompt":"x"})");
  EXPECT_TRUE(r.ok()) << r.error().message;
}

// --- parse_request: what is refused ---

TEST(OpenAiTranslation, OnlyOneChoiceMayBeAsked) {
  EXPECT_TRUE(parse(Kind::completion, R"({"prompt":"x","n":1})").ok());
  EXPECT_TRUE(parse(Kind::chat, chat_body({{"n", 1}})).ok());
  // Only the integer 1: 1.0 is a float, and a float is never taken for an integer.
  for (const char* n : {"2", "0", "-1", "1.0", "1.9", R"("1")", "true", "[1]"}) {
    expect_bad_input(Kind::completion, std::string(R"({"prompt":"x","n":)") + n + "}", "n",
                     "must be 1");
    expect_bad_input(Kind::chat, chat_body({{"n", json::parse(n)}}), "n", "must be 1");
  }
}

TEST(OpenAiTranslation, APromptMustBeAStringOrTokenIdsOrAnArrayOfOneOfThem) {
  for (const char* prompt :
       {R"(["a","b"])", "[]", "[[1],[2]]", "[[]]", "42", "true", R"({"text":"x"})", "null"}) {
    expect_bad_input(Kind::completion, std::string(R"({"prompt":)") + prompt + "}", "prompt",
                     "must be a string or an array of token ids");
  }
  expect_bad_input(Kind::completion, R"({"max_tokens":3})", "prompt", "must be a string");
}

TEST(OpenAiTranslation, EachKindReadsOnlyItsOwnInput) {
  // A chat has no prompt field, a completion no messages.
  expect_bad_input(Kind::chat, R"({"prompt":"x"})", "messages", "must be a non-empty array");
  expect_bad_input(Kind::completion, chat_body(json::object()), "prompt", "must be a string");
  auto both = parse(Kind::chat, chat_body({{"prompt", "ignored"}}));
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ(both->params.prompt, "user: Hello\nassistant:");
}

TEST(OpenAiTranslation, WrongTypesAndOutOfRangeSamplingValuesAreRefusedByName) {
  const char* const completion_prefix = R"({"prompt":"x",)";
  struct Case {
    const char* field;
    const char* phrase;
  };
  const std::vector<std::pair<std::string, Case>> cases = {
      {R"("max_tokens":0)", {"max_tokens", "must be an integer between 1 and 4096"}},
      {R"("max_tokens":-5)", {"max_tokens", "must be an integer between 1 and 4096"}},
      {R"("max_tokens":1.5)", {"max_tokens", "must be an integer between 1 and 4096"}},
      {R"("max_tokens":"16")", {"max_tokens", "must be an integer between 1 and 4096"}},
      {R"("temperature":-0.1)", {"temperature", "must be between 0"}},
      {R"("temperature":100.5)", {"temperature", "must be between 0"}},
      {R"("temperature":"hot")", {"temperature", "must be a number"}},
      {R"("top_p":0)", {"top_p", "must be greater than 0"}},
      {R"("top_p":1.1)", {"top_p", "must be between 0"}},
      {R"("top_p":"all")", {"top_p", "must be a number"}},
      {R"("seed":-1)", {"seed", "must be a non-negative integer"}},
      {R"("seed":1.5)", {"seed", "must be a non-negative integer"}},
      {R"("seed":"42")", {"seed", "must be a non-negative integer"}},
      {R"("stop":5)", {"stop", "must be a string or an array of strings"}},
      {R"("stop":["a",1])", {"stop", "must be a string or an array of strings"}},
      {R"("stop":["1","2","3","4","5","6","7","8","9"])", {"stop", "at most 8 strings"}},
      {R"("stream":"true")", {"stream", "must be a boolean"}},
      {R"("stream":1)", {"stream", "must be a boolean"}},
  };
  for (const auto& [field_text, expected] : cases) {
    expect_bad_input(Kind::completion, completion_prefix + field_text + "}", expected.field,
                     expected.phrase);
    json chat = json::parse(chat_body(json::object()));
    chat.update(json::parse("{" + field_text + "}"));
    expect_bad_input(Kind::chat, chat.dump(), expected.field, expected.phrase);
  }
}

TEST(OpenAiTranslation, ChatAllowsEightStopsOfItsOwnAndTheWorkerTakesThemWithTheMarker) {
  auto r = parse(Kind::chat, chat_body({{"stop", {"1", "2", "3", "4", "5", "6", "7", "8"}}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->params.stop.size(), 9u);
  EXPECT_EQ(r->params.stop.back(), "\nuser:");
  // The IPC form the worker re-validates allows the client's maximum plus the marker.
  auto back = generate_request_from_json(to_json(r->params));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->stop, r->params.stop);
  EXPECT_EQ(back->prompt, r->params.prompt);
  EXPECT_EQ(back->max_tokens, 256);
  EXPECT_EQ(back->temperature, 1.0);
}

TEST(OpenAiTranslation, APromptOverOneMebibyteIsRefused) {
  const std::string big(std::size_t{1} << 20, 'a');
  EXPECT_TRUE(openai::parse_request(Kind::completion, {{"prompt", big}}, kModel).ok());
  auto r = openai::parse_request(Kind::completion, {{"prompt", big + "a"}}, kModel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
  EXPECT_EQ(r.error().message, "'prompt' is longer than 1048576 bytes");
  // For a chat the limit holds for the template's text, not the content alone.
  const json messages = json::array({{{"role", "user"}, {"content", big}}});
  auto chat = openai::parse_request(Kind::chat, {{"messages", messages}}, kModel);
  ASSERT_FALSE(chat.ok());
  EXPECT_NE(chat.error().message.find("is longer than 1048576 bytes"), std::string::npos)
      << chat.error().message;
}

TEST(OpenAiTranslation, ABodyThatIsNotAnObjectIsRefusedWithoutThrowing) {
  for (const json& body : {json::array({"x"}), json("x"), json(3), json()}) {
    auto c = openai::parse_request(Kind::completion, body, kModel);
    ASSERT_FALSE(c.ok()) << body.dump();
    EXPECT_EQ(c.error().kind, ErrorKind::bad_input) << body.dump();
    EXPECT_NE(c.error().message.find("'prompt'"), std::string::npos) << c.error().message;
    auto chat = openai::parse_request(Kind::chat, body, kModel);
    ASSERT_FALSE(chat.ok()) << body.dump();
    EXPECT_NE(chat.error().message.find("'messages'"), std::string::npos) << chat.error().message;
  }
}

// --- chat_prompt ---

TEST(OpenAiTranslation, ChatPromptFollowsTheDocumentedTemplate) {
  const json messages =
      json::parse(R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}])");
  auto r = openai::chat_prompt(messages);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "system: Be brief.\nuser: Hello\nassistant:");

  auto parsed = openai::parse_request(Kind::chat, {{"messages", messages}}, kModel);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->params.prompt, *r);
}

TEST(OpenAiTranslation, ChatPromptKeepsEveryRoleAndTheContentVerbatim) {
  const json messages = json::parse(R"([
      {"role":"user","content":"Hi\nthere"},
      {"role":"assistant","content":"Hello!"},
      {"role":"tool","content":""},
      {"role":"user","content":"2 + 2?","name":"bob"}])");
  auto r = openai::chat_prompt(messages);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "user: Hi\nthere\nassistant: Hello!\ntool: \nuser: 2 + 2?\nassistant:");
}

TEST(OpenAiTranslation, ChatPromptJoinsTheTextPartsOfAMessage) {
  auto r = openai::chat_prompt(json::parse(R"([{"role":"user","content":[
      {"type":"text","text":"Hel"},{"type":"text","text":"lo","extra":1}]}])"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "user: Hello\nassistant:");
  auto none = openai::chat_prompt(json::parse(R"([{"role":"user","content":[]}])"));
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_EQ(*none, "user: \nassistant:");
}

TEST(OpenAiTranslation, ChatPromptNeedsANonEmptyArrayOfMessages) {
  for (const json& messages : {json::array(), json(), json("user: hi"), json::object(), json(1),
                               json{{"role", "user"}, {"content", "hi"}}}) {
    expect_chat_prompt_refused(messages, "must be a non-empty array");
  }
}

TEST(OpenAiTranslation, ChatPromptNeedsAStringRoleInEachMessage) {
  for (const char* messages :
       {R"([{"content":"hi"}])", R"([{"role":"","content":"hi"}])",
        R"([{"role":5,"content":"hi"}])", R"([{"role":null,"content":"hi"}])", R"(["hi"])",
        R"([{"role":"user","content":"ok"},{"content":"second"}])"}) {
    expect_chat_prompt_refused(json::parse(messages), "each message needs a string 'role'");
  }
}

TEST(OpenAiTranslation, ChatPromptTakesOnlyTextContent) {
  for (const char* messages : {R"([{"role":"user"}])", R"([{"role":"user","content":null}])",
                               R"([{"role":"user","content":5}])",
                               R"([{"role":"user","content":{"type":"text","text":"x"}}])"}) {
    expect_chat_prompt_refused(json::parse(messages),
                               "content must be a string or an array of parts");
  }
  for (const char* messages :
       {R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}])",
        R"([{"role":"user","content":[{"type":"text","text":"a"},{"type":"input_audio"}]}])",
        R"([{"role":"user","content":[{"type":"text"}]}])",
        R"([{"role":"user","content":[{"type":"text","text":5}]}])",
        R"([{"role":"user","content":[{"text":"no type"}]}])",
        R"([{"role":"user","content":["bare string"]}])"}) {
    expect_chat_prompt_refused(json::parse(messages), "only text content parts are supported");
  }
  // parse_request passes the same refusal on.
  expect_bad_input(Kind::chat, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
                   "messages", "only text content parts are supported");
}

// --- answers ---

TEST(OpenAiTranslation, ACompletionAnswerHasTheTextCompletionShape) {
  const json expected = {
      {"id", "cmpl-1700000000-7"},
      {"object", "text_completion"},
      {"created", 1700000000},
      {"model", "demo"},
      {"choices", json::array({{{"index", 0},
                                {"text", "Hi there"},
                                {"finish_reason", "length"},
                                {"logprobs", nullptr}}})},
      {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 3}, {"total_tokens", 8}}}};
  EXPECT_EQ(openai::response(Kind::completion, kCompletionIds, kResult), expected);
}

TEST(OpenAiTranslation, AChatAnswerHasTheChatCompletionShape) {
  json result = kResult;
  result["finish_reason"] = "stop";
  const json expected = {
      {"id", "chatcmpl-1700000000-8"},
      {"object", "chat.completion"},
      {"created", 1700000001},
      {"model", "demo"},
      {"choices", json::array({{{"index", 0},
                                {"message", {{"role", "assistant"}, {"content", "Hi there"}}},
                                {"finish_reason", "stop"},
                                {"logprobs", nullptr}}})},
      {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 3}, {"total_tokens", 8}}}};
  EXPECT_EQ(openai::response(Kind::chat, kChatIds, result), expected);
}

TEST(OpenAiTranslation, AStreamedCompletionChunkCarriesItsText) {
  const json expected = {
      {"id", "cmpl-1700000000-7"},
      {"object", "text_completion"},
      {"created", 1700000000},
      {"model", "demo"},
      {"choices",
       json::array(
           {{{"index", 0}, {"text", "Hel"}, {"finish_reason", nullptr}, {"logprobs", nullptr}}})}};
  EXPECT_EQ(openai::chunk(Kind::completion, kCompletionIds, "Hel", true), expected);
  // `first` means nothing to a completion.
  json later = expected;
  later["choices"][0]["text"] = "lo";
  EXPECT_EQ(openai::chunk(Kind::completion, kCompletionIds, "lo", false), later);
}

TEST(OpenAiTranslation, AStreamedChatChunkCarriesADeltaAndOnlyTheFirstTheRole) {
  const json first = {
      {"id", "chatcmpl-1700000000-8"},
      {"object", "chat.completion.chunk"},
      {"created", 1700000001},
      {"model", "demo"},
      {"choices", json::array({{{"index", 0},
                                {"delta", {{"role", "assistant"}, {"content", "Hel"}}},
                                {"finish_reason", nullptr},
                                {"logprobs", nullptr}}})}};
  EXPECT_EQ(openai::chunk(Kind::chat, kChatIds, "Hel", true), first);
  json later = first;
  later["choices"][0]["delta"] = {{"content", "lo"}};
  EXPECT_EQ(openai::chunk(Kind::chat, kChatIds, "lo", false), later);
}

TEST(OpenAiTranslation, TheFinalChunkCarriesTheFinishReasonAndNoText) {
  const json chat = openai::final_chunk(Kind::chat, kChatIds, kResult);
  EXPECT_EQ(chat, (json{{"id", "chatcmpl-1700000000-8"},
                        {"object", "chat.completion.chunk"},
                        {"created", 1700000001},
                        {"model", "demo"},
                        {"choices", json::array({{{"index", 0},
                                                  {"delta", json::object()},
                                                  {"finish_reason", "length"},
                                                  {"logprobs", nullptr}}})}}));
  json stopped = kResult;
  stopped["finish_reason"] = "stop";
  const json completion = openai::final_chunk(Kind::completion, kCompletionIds, stopped);
  EXPECT_EQ(completion, (json{{"id", "cmpl-1700000000-7"},
                              {"object", "text_completion"},
                              {"created", 1700000000},
                              {"model", "demo"},
                              {"choices", json::array({{{"index", 0},
                                                        {"text", ""},
                                                        {"finish_reason", "stop"},
                                                        {"logprobs", nullptr}}})}}));
  // Neither carries usage: that is the usage chunk's.
  EXPECT_FALSE(chat.contains("usage"));
  EXPECT_FALSE(completion.contains("usage"));
}

TEST(OpenAiTranslation, TheUsageChunkHasNoChoicesAndTheUsage) {
  const json usage = {{"prompt_tokens", 5}, {"completion_tokens", 3}, {"total_tokens", 8}};
  EXPECT_EQ(openai::usage_chunk(Kind::chat, kChatIds, kResult),
            (json{{"id", "chatcmpl-1700000000-8"},
                  {"object", "chat.completion.chunk"},
                  {"created", 1700000001},
                  {"model", "demo"},
                  {"choices", json::array()},
                  {"usage", usage}}));
  EXPECT_EQ(openai::usage_chunk(Kind::completion, kCompletionIds, kResult),
            (json{{"id", "cmpl-1700000000-7"},
                  {"object", "text_completion"},
                  {"created", 1700000000},
                  {"model", "demo"},
                  {"choices", json::array()},
                  {"usage", usage}}));
}

// --- errors and the model list ---

TEST(OpenAiTranslation, ClientErrorsAreInvalidRequestErrors) {
  EXPECT_EQ(openai::error_body(400, "'n' must be 1"), (json{{"error",
                                                             {{"message", "'n' must be 1"},
                                                              {"type", "invalid_request_error"},
                                                              {"param", "n"},
                                                              {"code", nullptr}}}}));
  EXPECT_EQ(openai::error_body(400, "no param here")["error"]["param"], nullptr);
  EXPECT_EQ(openai::error_body(500, "'x' failed")["error"]["param"], nullptr);
  for (const int status : {400, 413, 499}) {
    const auto body = openai::error_body(status, "m");
    EXPECT_EQ(body["error"]["type"], "invalid_request_error") << status;
    EXPECT_TRUE(body["error"]["code"].is_null()) << status;
    EXPECT_EQ(body["error"]["message"], "m") << status;
  }
}

TEST(OpenAiTranslation, A404IsModelNotFound) {
  EXPECT_EQ(openai::error_body(404, "The model 'x' does not exist"),
            (json{{"error",
                   {{"message", "The model 'x' does not exist"},
                    {"type", "invalid_request_error"},
                    {"param", nullptr},
                    {"code", "model_not_found"}}}}));
}

TEST(OpenAiTranslation, ServerSideFailuresAreServerErrors) {
  for (const int status : {500, 502, 503, 504}) {
    const auto body = openai::error_body(status, "worker died");
    EXPECT_EQ(body, (json{{"error",
                           {{"message", "worker died"},
                            {"type", "server_error"},
                            {"param", nullptr},
                            {"code", nullptr}}}}))
        << status;
  }
}

TEST(OpenAiTranslation, ModelsListsTheOneServedModel) {
  EXPECT_EQ(openai::models("demo", 1700000000),
            (json{{"object", "list"},
                  {"data", json::array({{{"id", "demo"},
                                         {"object", "model"},
                                         {"created", 1700000000},
                                         {"owned_by", "respawn"}}})}}));
}

}  // namespace
}  // namespace respawn
