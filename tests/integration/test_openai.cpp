// The OpenAI-compatible routes, checked field by field against the shapes the official
// clients parse; the official openai Python SDK itself runs against them in
// tests/python/test_openai_sdk.py.
#include <gtest/gtest.h>


#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;

TEST(OpenAi, ModelsListsTheServedModel) {
  Server server(fake_args());
  const auto r = server.get("/v1/models").json();
  EXPECT_EQ(r["object"], "list");
  ASSERT_EQ(r["data"].size(), 1u);
  EXPECT_EQ(r["data"][0]["id"], "demo");
  EXPECT_EQ(r["data"][0]["object"], "model");
  EXPECT_TRUE(r["data"][0]["created"].is_number_integer());
}

TEST(OpenAi, ChatUsesTheDocumentedTemplateAndTheChatCompletionShape) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const json request = {
      {"model", "demo"},
      {"messages",
       {{{"role", "system"}, {"content", "Be brief."}},
        {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Hello"}}}}}}}};
  const auto r = server.post("/v1/chat/completions", request.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = r.json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["model"], "demo");
  const auto& choice = j["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  // The fake worker echoes its prompt: the template itself.
  EXPECT_EQ(choice["message"]["content"], "system: Be brief.\nuser: Hello\nassistant:");
  EXPECT_TRUE(choice.contains("finish_reason"));
  EXPECT_EQ(j["usage"]["total_tokens"],
            j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
}

TEST(OpenAi, StreamedChatEndsWithDoneAndTheDeltasCarryTheText) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const json request = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                        {"stream", true},
                        {"stream_options", {{"include_usage", true}}}};
  const auto r = server.post("/v1/chat/completions", request.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto data = sse_data(r.body);
  ASSERT_GE(data.size(), 4u) << r.body;
  EXPECT_EQ(data.back(), "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 3 < data.size(); ++i) {
    const auto chunk = json::parse(data[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (i == 0) {
      EXPECT_EQ(chunk["choices"][0]["delta"]["role"], "assistant");
    }
    text += chunk["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(text, "user: Hi\nassistant:");
  const auto last = json::parse(data[data.size() - 3]);
  EXPECT_FALSE(last["choices"][0]["finish_reason"].is_null());
  const auto usage = json::parse(data[data.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_GT(usage["usage"]["prompt_tokens"], 0);
}

TEST(OpenAi, ErrorsUseTheOpenAiErrorShape) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto expect_error = [](const HttpResult& r, int status, const std::string& words) {
    EXPECT_EQ(r.status, status) << r.body;
    const auto j = r.json();
    ASSERT_TRUE(j.contains("error") && j["error"].is_object()) << r.body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(words), std::string::npos) << r.body;
    EXPECT_TRUE(j["error"]["type"].is_string());
  };
  expect_error(server.post("/v1/completions", R"({"model":"gpt-9","prompt":"x"})"), 404,
               "'gpt-9' does not exist");
  expect_error(server.post("/v1/completions", R"({"prompt":"x","n":3})"), 400, "'n'");
  expect_error(server.post("/v1/completions", R"({"prompt":["a","b"]})"), 400, "'prompt'");
  expect_error(server.post("/v1/chat/completions", R"({"messages":[]})"), 400, "'messages'");
  expect_error(server.post("/v1/completions", R"({"prompt":"x","max_tokens":0})"), 400,
               "'max_tokens'");
  expect_error(server.post("/v1/completions", "{oops"), 400, "not valid JSON");
}

#if RESPAWN_HAS_WORKER
TEST(OpenAi, GreedyCompletionMatchesGenerateAndStreamsTheSameText) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const json request = {{"model", "demo"},
                        {"prompt", "The supervisor"},
                        {"max_tokens", 20},
                        {"temperature", 0},
                        {"stop", {"queue"}}};
  const auto plain = server.post("/v1/completions", request.dump()).json();
  EXPECT_EQ(plain["object"], "text_completion");
  const auto generate = server.post(
      "/v2/models/demo/generate",
      json{{"text_input", "The supervisor"}, {"max_tokens", 20}, {"stop", "queue"}}.dump());
  EXPECT_EQ(plain["choices"][0]["text"], generate.json()["text_output"]);
  json streamed_request = request;
  streamed_request["stream"] = true;
  const auto stream = server.post("/v1/completions", streamed_request.dump());
  std::string text;
  for (const auto& d : sse_data(stream.body)) {
    if (d != "[DONE]") text += json::parse(d)["choices"][0].value("text", "");
  }
  EXPECT_EQ(text, plain["choices"][0]["text"]);
}

TEST(OpenAi, AStreamedChatWithNoTextStillSaysItIsTheAssistant) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  json request = {
      {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 1}, {"temperature", 0}};
  const auto first = server.post("/v1/chat/completions", request.dump()).json();
  const auto c = first["choices"][0]["message"]["content"].get<std::string>();
  ASSERT_EQ(c.size(), 1u);
  // The same reply stopped at its first character: no text at all.
  request["stop"] = c;
  request["stream"] = true;
  const auto r = server.post("/v1/chat/completions", request.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto data = sse_data(r.body);
  ASSERT_GE(data.size(), 2u) << r.body;
  const auto opening = json::parse(data[0]);
  EXPECT_EQ(opening["choices"][0]["delta"]["role"], "assistant") << r.body;
  EXPECT_EQ(json::parse(data[data.size() - 2])["choices"][0]["finish_reason"], "stop") << r.body;
}
#endif

}  // namespace
}  // namespace respawn::test
