// POST /tokenize and /detokenize (vLLM's shapes) against the real `respawn` binary: byte-level
// without --tokenizer, and with a Hugging Face tokenizer folder (tokenizer.json trained by
// scripts/make_tokenizer_refs.py, a ChatML chat template), whose ids must be those Hugging Face
// `tokenizers` recorded in tests/data/tokenizers/references.json.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harness.hpp"

namespace respawn::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& path) {
  return json::parse(read_file(path));
}

// A tokenizer folder: qwen2's tokenizer.json, a tokenizer_config.json with the ChatML template,
// and a generation_config.json.
void write_tokenizer_folder(const fs::path& dir) {
  fs::create_directories(dir);
  fs::copy_file(data_path("tokenizers/qwen2/tokenizer.json"), dir / "tokenizer.json");
  const json config = {{"chat_template", read_file(data_path("chat_templates/chatml.jinja"))},
                       {"bos_token", nullptr},
                       {"eos_token", {{"content", "<|im_end|>"}}}};
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": [1, 2]})";
}

TEST(Tokenize, WithoutATokenizerATokenIsAByteOfUtf8) {
  Server server(fake_args());
  auto r = server.post("/tokenize", R"({"prompt":"hé"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["tokens"], json::array({104, 0xC3, 0xA9}));
  EXPECT_EQ(r.json()["count"], 3);
  EXPECT_TRUE(r.json().contains("max_model_len"));
  r = server.post("/detokenize", R"({"tokens":[104,195,169]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["prompt"], "hé");
  // The fixed chat template, ending with the assistant's turn.
  r = server.post("/tokenize", R"({"messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  std::string text;
  const auto tokens = r.json()["tokens"];
  for (const auto& id : tokens) text += static_cast<char>(id.get<int>());
  EXPECT_EQ(text, "user: Hi\nassistant:");
  // A long prompt is tokenized off the I/O thread; the answer is the same.
  const std::string longer(100000, 'a');
  r = server.post("/tokenize", json{{"prompt", longer}}.dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["count"], 100000);
  EXPECT_EQ(r.json()["tokens"][99999], 'a');
}

TEST(Tokenize, IdsAgreeWithHuggingFaceTokenizers) {
  TempDir dir("respawn-tokenize-");
  write_tokenizer_folder(dir.path() / "tok");
  Server server(fake_args({"--tokenizer", (dir.path() / "tok").string()}));
  const auto refs = read_json(data_path("tokenizers/references.json"));
  const auto& strings = refs["strings"];
  const auto& cases = refs["variants"]["qwen2"]["cases"];
  ASSERT_EQ(strings.size(), cases.size());
  for (std::size_t i = 0; i < strings.size(); ++i) {
    for (const bool special : {false, true}) {
      const auto& expected = cases[i][special ? "with_special" : "plain"];
      const auto r = server.post(
          "/tokenize", json{{"prompt", strings[i]}, {"add_special_tokens", special}}.dump());
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.json()["tokens"], expected["ids"]) << strings[i];
      const auto back = server.post("/detokenize", json{{"tokens", expected["ids"]}}.dump());
      ASSERT_EQ(back.status, 200) << back.body;
      EXPECT_EQ(back.json()["prompt"], expected["decoded"]) << strings[i];
    }
  }
}

TEST(Tokenize, MessagesAreRenderedWithTheModelsChatTemplate) {
  TempDir dir("respawn-tokenize-");
  write_tokenizer_folder(dir.path() / "tok");
  Server server(fake_args({"--tokenizer", (dir.path() / "tok").string()}));
  const std::string rendered = "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n";
  const auto chat =
      server.post("/tokenize", R"({"messages":[{"role":"user","content":"Hello!"}]})");
  const auto plain =
      server.post("/tokenize", json{{"prompt", rendered}, {"add_special_tokens", false}}.dump());
  ASSERT_EQ(chat.status, 200) << chat.body;
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(chat.json()["tokens"], plain.json()["tokens"]);
  const auto text = server.post("/detokenize", json{{"tokens", chat.json()["tokens"]}}.dump());
  EXPECT_EQ(text.json()["prompt"], rendered);
  const auto without = server.post(
      "/tokenize",
      R"({"messages":[{"role":"user","content":"Hello!"}],"add_generation_prompt":false})");
  ASSERT_EQ(without.status, 200) << without.body;
  EXPECT_LT(without.json()["count"].get<int>(), chat.json()["count"].get<int>());
}

TEST(Tokenize, BadRequestsAre400sAnd404sAndTheServerKeepsServing) {
  TempDir dir("respawn-tokenize-");
  write_tokenizer_folder(dir.path() / "tok");
  Server server(fake_args({"--tokenizer", (dir.path() / "tok").string()}));
  for (const char* body :
       {R"({})", R"({"prompt":"x","messages":[]})", R"({"prompt":7})",
        R"({"prompt":"x","add_special_tokens":"yes"})", R"({"messages":"hi"})", "not json"}) {
    const auto r = server.post("/tokenize", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_TRUE(r.json().contains("error")) << r.body;
  }
  for (const char* body : {R"({"tokens":[99999999]})", R"({"tokens":[-1]})", R"({"tokens":"1"})",
                           R"({"tokens":[1.5]})", R"({})"}) {
    const auto r = server.post("/detokenize", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
  }
  EXPECT_EQ(server.post("/tokenize", R"({"model":"other","prompt":"x"})").status, 404);
  EXPECT_EQ(server.get("/tokenize").status, 405);
  EXPECT_EQ(server.post("/tokenize", R"({"prompt":"x"})").status, 200);
}

TEST(Tokenize, AnswersWhileNoWorkerIsReady) {
  // Every worker fails to load: tokenizing needs none.
  Server server(fake_args(), {{"RESPAWN_FAKE_MODE", "fail-load"}});
  EXPECT_NE(server.get("/v2/health/ready").status, 200);
  const auto r = server.post("/tokenize", R"({"prompt":"ok"})");
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST(Tokenize, AnUnreadableTokenizerStopsTheServerAtStartWithTheReason) {
  TempDir dir("respawn-tokenize-");
  std::ofstream(dir.path() / "tokenizer.json") << R"({"model":{"type":"Unigram","vocab":[]}})";
  try {
    Server server(fake_args({"--tokenizer", (dir.path() / "tokenizer.json").string()}));
    FAIL() << "the server started";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--tokenizer"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Unigram"), std::string::npos) << e.what();
  }
}

// POST /admin/reload reads the tokenizer files again along with the model: a tokenizer.json
// replaced on disk serves after it; one that does not load is refused and changes nothing.
TEST(Tokenize, AReloadReadsTheTokenizerFilesAgain) {
  TempDir dir("respawn-tokenize-");
  const auto tok = dir.path() / "tok";
  write_tokenizer_folder(tok);
  Server server(fake_args({"--tokenizer", tok.string()}));
  ASSERT_TRUE(server.wait_ready());
  const auto refs = read_json(data_path("tokenizers/references.json"));
  const std::string text = refs["strings"][2];
  const auto qwen2 = refs["variants"]["qwen2"]["cases"][2]["plain"]["ids"];
  const auto gpt2 = refs["variants"]["gpt2"]["cases"][2]["plain"]["ids"];
  ASSERT_NE(qwen2, gpt2);
  const auto ids = [&] {
    const auto r = server.post("/tokenize", json{{"prompt", text}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json()["tokens"];
  };
  EXPECT_EQ(ids(), qwen2);

  fs::copy_file(data_path("tokenizers/gpt2/tokenizer.json"), tok / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  EXPECT_EQ(ids(), qwen2);  // read at start-up and at a reload only
  const pid_t worker = server.worker_pid();
  auto reload = server.post("/admin/reload", "");
  ASSERT_EQ(reload.status, 200) << reload.body;
  EXPECT_EQ(ids(), gpt2);
  EXPECT_TRUE(wait_until([&] { return server.worker_pid() != worker; }, std::chrono::seconds(10)));

  std::ofstream(tok / "tokenizer.json", std::ios::trunc) << "{ not json";
  const pid_t fork_server = server.workers()["fork_server"].value("pid", 0);
  reload = server.post("/admin/reload", "");
  EXPECT_EQ(reload.status, 500) << reload.body;
  EXPECT_NE(reload.json().value("error", "").find("the tokenizer did not load again"),
            std::string::npos)
      << reload.body;
  EXPECT_EQ(ids(), gpt2);
  EXPECT_EQ(server.workers()["fork_server"].value("pid", 0), fork_server);
  EXPECT_EQ(server.metric("respawn_worker_recycles_total{reason=\"reload\"}"), 1);
}

}  // namespace
}  // namespace respawn::test
