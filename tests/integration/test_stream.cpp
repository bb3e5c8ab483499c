// POST /v2/models/{m}/generate_stream: Server-Sent Events carrying the text as the worker
// produces it, then a last event with finish_reason and usage.
#include <gtest/gtest.h>


#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;

// The `data:` payloads of an SSE body, parsed.
std::vector<json> sse_events(const std::string& body) {
  std::vector<json> events;
  for (const auto& data : sse_data(body)) events.push_back(json::parse(data));
  return events;
}

std::string joined_text(const std::vector<json>& events) {
  std::string text;
  for (const auto& e : events) text += e.value("text_output", "");
  return text;
}

#if RESPAWN_HAS_WORKER
TEST(Stream, TheEventsAddUpToTheSameTextAsGenerate) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto body = json{{"text_input", "The supervisor"},
                         {"parameters", {{"max_tokens", 60}, {"stop", "queue"}}}}
                        .dump();
  const auto plain = server.post("/v2/models/demo/generate", body);
  const auto stream = server.post("/v2/models/demo/generate_stream", body);
  ASSERT_EQ(stream.status, 200) << stream.body;
  EXPECT_EQ(stream.headers.at("content-type"), "text/event-stream");
  const auto events = sse_events(stream.body);
  ASSERT_GE(events.size(), 10u) << "one event per chunk, not one at the end";
  EXPECT_EQ(joined_text(events), plain.json()["text_output"]);
  EXPECT_EQ(joined_text(events), " speaks HTTP and keeps a ");
  for (const auto& e : events) {
    EXPECT_EQ(e.value("text_output", "").find("que"), std::string::npos) << "stop text leaked";
  }
  const auto& last = events.back();
  EXPECT_EQ(last["finish_reason"], "stop");
  EXPECT_EQ(last["usage"]["prompt_tokens"], 14);
  EXPECT_EQ(last["model_name"], "demo");
  EXPECT_EQ(server.metric(R"(respawn_requests_total{route="generate_stream",code="200"})"), 1);
}
#endif

TEST(Stream, BadInputIsAPlainJsonErrorBeforeAnyEvent) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto r = server.post("/v2/models/demo/generate_stream",
                             R"({"text_input":"x","parameters":{"max_tokens":0}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.json().value("error", "").find("max_tokens"), std::string::npos);
}

TEST(Stream, KeepAliveWorksAfterAStream) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  for (int i = 0; i < 2; ++i) {
    const auto r = server.post("/v2/models/demo/generate_stream", R"({"text_input":"echo me"})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(joined_text(sse_events(r.body)), "echo me");
  }
}

TEST(Stream, AWorkerThatDiesAfterStreamingEndsTheStreamWithAnErrorAndIsNotReplayed) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old = server.worker_pid();
  const auto r =
      server.post("/v2/models/demo/generate_stream", R"({"text_input":"stream-then-crash"})");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto events = sse_events(r.body);
  ASSERT_EQ(events.size(), 2u) << r.body;
  EXPECT_EQ(events[0]["text_output"], "partial");
  EXPECT_NE(events[1].value("error", "").find("worker died"), std::string::npos) << r.body;
  EXPECT_EQ(server.metric("respawn_requests_replayed_total"), 0)
      << "replaying would send the client its text twice";
  EXPECT_TRUE(wait_until([&] { return process_gone(old); }, std::chrono::seconds(5)));
  EXPECT_TRUE(server.wait_ready(std::chrono::seconds(10)));
}

}  // namespace
}  // namespace respawn::test
