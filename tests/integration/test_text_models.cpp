// A real language model end to end: models/tinyqwen (a transformers Qwen2ForCausalLM exported by
// scripts/make_text_models.py with its trained tokenizer, the Qwen2.5 chat template and two EOS
// ids) served by the real binaries. The prompts' ids and the greedy completions must be those
// transformers built and generated (models/tinyqwen/references.json), token for token.
#include <gtest/gtest.h>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;

#if RESPAWN_HAS_WORKER

json references() {
  return json::parse(read_file(model_path("tinyqwen/references.json")));
}

class TinyQwen : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new Server({"--model", model_path("tinyqwen/model.pt"), "--tokenizer",
                          model_path("tinyqwen"), "--max-batch-size", "4"});
    ASSERT_TRUE(server_->wait_ready()) << server_->log();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static Server* server_;
};
Server* TinyQwen::server_ = nullptr;

TEST_F(TinyQwen, ChatPromptsAndGreedyRepliesAreTransformersOwn) {
  const auto refs = references();
  for (const auto& ref : refs["references"]) {
    if (!ref.contains("messages")) continue;
    const auto name = ref["name"].get<std::string>();
    auto r = server_->post("/tokenize", json{{"messages", ref["messages"]}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["tokens"], ref["prompt_ids"]) << name;
    EXPECT_EQ(r.json()["max_model_len"], 256);

    r = server_->post("/v1/chat/completions", json{{"messages", ref["messages"]},
                                                   {"temperature", 0},
                                                   {"max_tokens", ref["max_new_tokens"]}}
                                                  .dump());
    ASSERT_EQ(r.status, 200) << r.body;
    const auto answer = r.json();
    EXPECT_EQ(answer["choices"][0]["message"]["content"], ref["completion"]) << name;
    EXPECT_EQ(answer["choices"][0]["finish_reason"], ref["finish_reason"]) << name;
    // The EOS id ends the reply and is counted, as transformers' generate returns it.
    EXPECT_EQ(answer["usage"]["completion_tokens"], ref["new_ids"].size()) << name;
    EXPECT_EQ(answer["usage"]["prompt_tokens"], ref["prompt_ids"].size()) << name;
  }
}

TEST_F(TinyQwen, PlainPromptsGetTheTokenizersSpecialTokensAndStopAtEndOfText) {
  const auto refs = references();
  for (const auto& ref : refs["references"]) {
    if (!ref.contains("text")) continue;
    const auto name = ref["name"].get<std::string>();
    auto r = server_->post("/tokenize", json{{"prompt", ref["text"]}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["tokens"], ref["prompt_ids"]) << name;
    r = server_->post(
        "/v1/completions",
        json{{"prompt", ref["text"]}, {"temperature", 0}, {"max_tokens", ref["max_new_tokens"]}}
            .dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["choices"][0]["text"], ref["completion"]) << name;
    EXPECT_EQ(r.json()["choices"][0]["finish_reason"], ref["finish_reason"]) << name;
    // The same prompt as token ids.
    r = server_->post("/v1/completions", json{{"prompt", ref["prompt_ids"]},
                                              {"temperature", 0},
                                              {"max_tokens", ref["max_new_tokens"]}}
                                             .dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["choices"][0]["text"], ref["completion"]) << name;
    // The Triton generate extension: the same.
    r = server_->post(
        "/v2/models/model/generate",
        json{{"text_input", ref["text"]}, {"parameters", {{"max_tokens", ref["max_new_tokens"]}}}}
            .dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["text_output"], ref["completion"]) << name;
    EXPECT_EQ(r.json()["usage"]["completion_tokens"], ref["new_ids"].size()) << name;
  }
}

TEST_F(TinyQwen, AStreamedReplyAddsUpToTheWholeOne) {
  const auto refs = references();
  for (const auto& ref : refs["references"]) {
    const auto name = ref["name"].get<std::string>();
    if (name != "hindi" && name != "chinese" && name != "code") continue;
    const auto r = server_->post("/v1/chat/completions", json{{"messages", ref["messages"]},
                                                              {"temperature", 0},
                                                              {"max_tokens", ref["max_new_tokens"]},
                                                              {"stream", true}}
                                                             .dump());
    ASSERT_EQ(r.status, 200) << r.body;
    std::string text;
    int pieces = 0;
    for (const auto& d : sse_data(r.body)) {
      if (d == "[DONE]") break;
      const auto chunk = json::parse(d);
      const auto& delta = chunk["choices"][0]["delta"];
      if (delta.contains("content")) {
        text += delta["content"].get<std::string>();  // each piece is whole UTF-8 (or parse fails)
        ++pieces;
      }
    }
    EXPECT_EQ(text, ref["completion"]) << name;
    EXPECT_GT(pieces, 1) << name;
  }
}

TEST_F(TinyQwen, SamplingNeverPicksThePaddedRowsTheTokenizerCannotDecode) {
  // 1792 logits for 1559 tokens; at temperature 2 (OpenAI's most) the 233 padded rows hold
  // about 1% of the probability (references.json), so 600 unmasked draws would pick some
  // (0.99^600 < 0.3%). A padded id decodes to nothing: every chosen token must have text.
  const auto refs = references();
  ASSERT_GT(refs["padded_vocab"].get<int>(), refs["tokenizer_vocab"].get<int>());
  int tokens = 0;
  for (int seed = 1; seed <= 40 && tokens < 600; ++seed) {
    const auto r =
        server_->post("/v1/chat/completions",
                      json{{"messages", {{{"role", "user"}, {"content", "What is respawn?"}}}},
                           {"temperature", 2},
                           {"top_p", 1},
                           {"seed", seed},
                           {"max_tokens", 40},
                           {"logprobs", true}}
                          .dump());
    ASSERT_EQ(r.status, 200) << r.body;
    const auto answer = r.json();
    for (const auto& t : answer["choices"][0]["logprobs"]["content"]) {
      EXPECT_FALSE(t["bytes"].empty()) << r.body;
      EXPECT_LE(t["logprob"].get<double>(), 0.0);
      ++tokens;
    }
  }
  EXPECT_GE(tokens, 600);
}

TEST_F(TinyQwen, LogprobsOfAGreedyReplyAreItsTokens) {
  const auto r =
      server_->post("/v1/chat/completions",
                    json{{"messages", {{{"role", "user"}, {"content", "What is respawn?"}}}},
                         {"temperature", 0},
                         {"logprobs", true},
                         {"top_logprobs", 3}}
                        .dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto answer = r.json();
  const auto& choice = answer["choices"][0];
  std::string joined;
  for (const auto& t : choice["logprobs"]["content"]) {
    for (const auto& b : t["bytes"]) joined += static_cast<char>(b.get<int>());
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);  // greedy: the most likely one
  }
  // The tokens spell the reply, then the EOS token that ended it.
  EXPECT_EQ(joined, choice["message"]["content"].get<std::string>() + "<|im_end|>");
}

TEST_F(TinyQwen, StreamedLogprobsComeWithTheirTokens) {
  // Hindi: characters of three bytes, split over byte-level tokens.
  const auto refs = references();
  json hindi;
  for (const auto& ref : refs["references"]) {
    if (ref["name"] == "hindi") hindi = ref;
  }
  ASSERT_TRUE(hindi.is_object());
  const auto r =
      server_->post("/v1/chat/completions", json{{"messages", hindi["messages"]},
                                                 {"temperature", 0},
                                                 {"logprobs", true},
                                                 {"top_logprobs", 2},
                                                 {"stream", true},
                                                 {"stream_options", {{"include_usage", true}}}}
                                                .dump());
  ASSERT_EQ(r.status, 200) << r.body;
  std::string text, spelled;
  int entries = 0, completion_tokens = -1;
  for (const auto& d : sse_data(r.body)) {
    if (d == "[DONE]") break;
    const auto chunk = json::parse(d);
    if (chunk.contains("usage")) completion_tokens = chunk["usage"]["completion_tokens"];
    if (chunk["choices"].empty()) continue;
    const auto& choice = chunk["choices"][0];
    if (choice.contains("delta")) text += choice["delta"].value("content", "");
    if (choice["logprobs"].is_null()) continue;
    for (const auto& t : choice["logprobs"]["content"]) {
      for (const auto& b : t["bytes"]) spelled += static_cast<char>(b.get<int>());
      EXPECT_EQ(t["top_logprobs"].size(), 2u);
      ++entries;
    }
  }
  EXPECT_EQ(text, hindi["completion"]);
  EXPECT_EQ(spelled, text + "<|im_end|>");  // every token once, the EOS that ended it last
  EXPECT_EQ(entries, completion_tokens);
}

TEST_F(TinyQwen, APromptLongerThanTheContextIsA400NamingIt) {
  std::string longer;
  for (int i = 0; i < 300; ++i) longer += "worker ";
  auto r = server_->post("/v1/chat/completions",
                         json{{"messages", {{{"role", "user"}, {"content", longer}}}}}.dump());
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json()["error"]["param"], "messages") << r.body;
  r = server_->post("/v1/completions", json{{"prompt", longer}}.dump());
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json()["error"]["param"], "prompt") << r.body;
  // A prompt of 64 KiB or more is encoded on the helper thread; the answer is the same.
  std::string huge;
  while (huge.size() < (70u << 10)) huge += "worker ";
  r = server_->post("/v1/completions", json{{"prompt", huge}}.dump());
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json()["error"]["param"], "prompt") << r.body;
  r = server_->post("/v2/models/model/generate_stream", json{{"text_input", huge}}.dump());
  EXPECT_EQ(r.status, 400) << r.body;
  r = server_->post("/v1/chat/completions",
                    json{{"messages", {{{"role", "user"}, {"content", huge}}}}}.dump());
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json()["error"]["param"], "messages") << r.body;
  // Ids the tokenizer does not have (the model's padded rows among them).
  r = server_->post("/v1/completions", json{{"prompt", {5, 1700}}}.dump());
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json()["error"]["param"], "prompt") << r.body;
  EXPECT_NE(r.body.find("outside the vocabulary"), std::string::npos) << r.body;
  // And what it cannot do is refused by name, in OpenAI's shape.
  r = server_->post("/v1/chat/completions",
                    json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                         {"response_format", {{"type", "json_object"}}}}
                        .dump());
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json()["error"]["param"], "response_format") << r.body;
  EXPECT_EQ(
      server_
          ->post(
              "/v1/chat/completions",
              json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4}}.dump())
          .status,
      200);
}

TEST(TinyQwenOneFile, TheModelFileAloneServesWithTheTokenizerItCarries) {
  // No --tokenizer: model.pt carries tokenizer.json, tokenizer_config.json and
  // generation_config.json as extra files.
  Server server({"--model", model_path("tinyqwen/model.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto refs = references();
  const auto& ref = refs["references"][0];
  auto r = server.post("/tokenize", json{{"messages", ref["messages"]}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["tokens"], ref["prompt_ids"]);
  r = server.post("/v1/chat/completions",
                  json{{"messages", ref["messages"]}, {"temperature", 0}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["choices"][0]["message"]["content"], ref["completion"]);
  EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "stop");
  EXPECT_NE(server.log().find("using the tokenizer files carried in"), std::string::npos);
}

#endif  // RESPAWN_HAS_WORKER

}  // namespace
}  // namespace respawn::test
