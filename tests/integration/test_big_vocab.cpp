// Tiny models over real-size vocabularies, served by the real binaries: models/gpt2-vocab
// (GPT-2's 50,257 tokens, 50,257 logits, no chat template) and models/qwen2.5-vocab (Qwen2.5's
// 151,643 + 22 added tokens, logits padded to 151,936, Qwen2.5's chat template). The tokenizers
// are the real ones, rebuilt by scripts/make_big_vocab_tokenizers.py from the rank files of
// openai-whisper (gpt2.tiktoken) and dashscope (qwen.tiktoken); the models, from
// scripts/make_big_vocab_models.py, are untrained: their logits over every row come from a
// computed table, the added tokens get -100 (a reply runs to max_tokens) and Qwen2.5's padded
// rows +50 (unmasked, they would win every draw).
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;

#if RESPAWN_HAS_WORKER

struct Known {
  std::string text;
  json ids;  // the real tokenizer's, with the default add_special_tokens (adds nothing here)
};

struct BigVocab {
  std::string folder;  // under models/
  int tokens;          // the tokenizer's size
  int logits;          // the model's output width
  std::vector<Known> known;
  json chat_ids;  // /tokenize of [{"role": "user", "content": "Hi"}]
};

// Starts the model with its tokenizer folder and checks /tokenize, /detokenize, chat (greedy and
// sampled, with logprobs) and the metadata routes.
void check_serves(const BigVocab& m) {
  SCOPED_TRACE(m.folder);
  using clock = std::chrono::steady_clock;
  const auto started = clock::now();
  Server server({"--model", model_path(m.folder + "/model.pt"), "--tokenizer", model_path(m.folder),
                 "--max-batch-size", "4"});
  const auto listening = clock::now();
  ASSERT_TRUE(server.wait_ready(std::chrono::seconds(120))) << server.log();
  const auto ready = clock::now();
  const auto ms = [](clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  std::cout << "[ BigVocab ] " << m.folder << ": listening after " << ms(listening - started)
            << " ms (tokenizer and chat template loaded), worker ready after "
            << ms(ready - started) << " ms" << std::endl;
  testing::Test::RecordProperty(m.folder + "_listening_ms",
                                static_cast<int>(ms(listening - started)));
  testing::Test::RecordProperty(m.folder + "_ready_ms", static_cast<int>(ms(ready - started)));

  for (const auto& k : m.known) {
    auto r = server.post("/tokenize", json{{"prompt", k.text}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    const auto tokenized = r.json();
    EXPECT_EQ(tokenized["tokens"], k.ids) << k.text;
    EXPECT_EQ(tokenized["count"], k.ids.size()) << k.text;
    EXPECT_EQ(tokenized["max_model_len"], 256) << k.text;
    r = server.post("/detokenize", json{{"tokens", k.ids}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["prompt"], k.text);
  }
  const json hi = json::array({{{"role", "user"}, {"content", "Hi"}}});
  auto r = server.post("/tokenize", json{{"messages", hi}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["tokens"], m.chat_ids);

  // The last token is decodable; the first id past the tokenizer is not (padded or not).
  r = server.post("/detokenize", json{{"tokens", json::array({m.tokens - 1})}}.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  r = server.post("/detokenize", json{{"tokens", json::array({m.tokens})}}.dump());
  EXPECT_EQ(r.status, 400) << r.body;

  // Greedy: the same non-empty reply twice, every token with bytes, up to max_tokens (the added
  // tokens, EOS among them, are never chosen by these models).
  const json greedy = {{"messages", {{{"role", "user"}, {"content", "Hello, who are you?"}}}},
                       {"temperature", 0},
                       {"max_tokens", 12},
                       {"logprobs", true}};
  std::string first;
  for (int i = 0; i < 2; ++i) {
    r = server.post("/v1/chat/completions", greedy.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    const auto answer = r.json();
    const auto& choice = answer["choices"][0];
    const auto content = choice["message"]["content"].get<std::string>();
    EXPECT_FALSE(content.empty()) << r.body;
    EXPECT_EQ(choice["finish_reason"], "length") << r.body;
    EXPECT_EQ(answer["usage"]["completion_tokens"], 12) << r.body;
    const auto tokens = choice["logprobs"]["content"];
    EXPECT_EQ(tokens.size(), 12u) << r.body;
    for (const auto& t : tokens) EXPECT_FALSE(t["bytes"].empty()) << r.body;
    if (i == 0) first = content;
    EXPECT_EQ(content, first);
  }
  std::cout << "[ BigVocab ] " << m.folder << " greedy reply: " << json(first).dump() << std::endl;

  // Sampled at temperature 2 (OpenAI's most): 5 seeds x 20 tokens, each chosen token a real one
  // (a padded id decodes to no bytes; on qwen2.5-vocab an unmasked padded row would win).
  int sampled = 0;
  for (int seed = 1; seed <= 5; ++seed) {
    r = server.post("/v1/chat/completions",
                    json{{"messages", {{{"role", "user"}, {"content", "Tell me a story."}}}},
                         {"temperature", 2},
                         {"top_p", 1},
                         {"seed", seed},
                         {"max_tokens", 20},
                         {"logprobs", true}}
                        .dump());
    ASSERT_EQ(r.status, 200) << r.body;
    const auto answer = r.json();
    const auto& choice = answer["choices"][0];
    EXPECT_FALSE(choice["message"]["content"].get<std::string>().empty()) << r.body;
    const auto tokens = choice["logprobs"]["content"];
    EXPECT_EQ(tokens.size(), 20u) << r.body;
    for (const auto& t : tokens) {
      EXPECT_FALSE(t["bytes"].empty()) << r.body;
      ++sampled;
    }
  }
  EXPECT_EQ(sampled, 100);

  // It is this model that serves: the metadata carries its logits' width and context.
  r = server.get("/v2/models/model");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto meta = r.json();
  EXPECT_EQ(meta["task"], "generate") << r.body;
  EXPECT_EQ(meta["max_context"], 256) << r.body;
  EXPECT_EQ(meta["outputs"][0]["shape"], json::array({-1, -1, m.logits})) << r.body;
  const auto workers = server.workers();
  EXPECT_GT(workers["pid"].get<int>(), 0) << workers.dump();
  EXPECT_TRUE(workers["state"] == "ready" || workers["state"] == "busy") << workers.dump();
  EXPECT_GE(workers["requests_served"].get<int>(), 7) << workers.dump();
}

TEST(BigVocab, Gpt2VocabularyServesTokenizeDetokenizeAndChat) {
  check_serves({"gpt2-vocab",
                50257,
                50257,
                {{"Hello world", {15496, 995}},
                 {" the", {262}},
                 {"Hello, world!", {15496, 11, 995, 0}},
                 {"<|endoftext|>", {50256}},
                 {"你好，世界！",
                  {19526, 254, 25001, 121, 171, 120, 234, 10310, 244, 45911, 234, 171, 120, 223}},
                 {"naïve café 👋", {2616, 38776, 40304, 50169, 233}},
                 {"  def f(x):\n\treturn x**2\n",
                  {220, 825, 277, 7, 87, 2599, 198, 197, 7783, 2124, 1174, 17, 198}}},
                // No chat template: the fixed one, "user: Hi\nassistant:".
                {7220, 25, 15902, 198, 562, 10167, 25}});
}

TEST(BigVocab, Qwen25VocabularyServesTokenizeDetokenizeAndChat) {
  check_serves(
      {"qwen2.5-vocab",
       151665,
       151936,
       {{"Hello world", {9707, 1879}},
        {" the", {279}},
        {"Hello, world!", {9707, 11, 1879, 0}},
        {"你好，世界！", {108386, 3837, 99489, 6313}},
        {"naïve café 👋", {3376, 37572, 586, 51950, 61804, 233}},
        {"  def f(x):\n\treturn x**2\n", {220, 707, 282, 2075, 982, 853, 856, 334, 17, 198}},
        {"<|im_start|>user\nHi<|im_end|>", {151644, 872, 198, 13048, 151645}},
        {"<|endoftext|><tool_call><|file_sep|>", {151643, 151657, 151664}}},
       // Qwen2.5's template with its default system prompt, as transformers renders it.
       {151644, 8948,   198, 2610, 525,   1207,   16948, 11,     3465,  553,
        54364,  14817,  13,  1446, 525,   264,    10950, 17847,  13,    151645,
        198,    151644, 872, 198,  13048, 151645, 198,   151644, 77091, 198}});
}

#endif  // RESPAWN_HAS_WORKER

}  // namespace
}  // namespace respawn::test
