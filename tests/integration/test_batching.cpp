// Batching through the real binaries: concurrent requests share forwards and get exactly what
// they get alone, an out-of-memory batch is retried smaller, the memory budget refuses what can
// never fit, a cancelled generation leaves its batch-mates running, and after a crash the
// requests caught in it are replayed one at a time so only the guilty one is quarantined.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <future>
#include <string>
#include <vector>

#include "harness.hpp"

namespace respawn::test {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using nlohmann::json;
using std::chrono::seconds;

#if RESPAWN_HAS_WORKER

// Mixed prompts (contexts of different lengths share each step), sampling parameters and
// lengths (sequences leave the batch at different steps); nine for a batch of eight, so one
// joins when another leaves.
std::vector<std::string> mixed_generations() {
  const std::vector<json> params = {
      {{"max_tokens", 48}},
      {{"max_tokens", 20}, {"temperature", 1.2}, {"seed", 7}},
      {{"max_tokens", 64}, {"temperature", 0.8}, {"top_p", 0.9}, {"seed", 42}},
      {{"max_tokens", 33}, {"stop", "queue"}},
      {{"max_tokens", 5}},
      {{"max_tokens", 40}, {"temperature", 1.0}, {"seed", 99}},
      {{"max_tokens", 56}, {"temperature", 0.5}, {"top_p", 0.5}, {"seed", 3}},
      {{"max_tokens", 12}, {"temperature", 2.0}, {"seed", 11}},
      // Past the model's 128-token context: it leaves its KV-cache slot and recomputes a window.
      {{"max_tokens", 160}, {"temperature", 0.7}, {"seed", 5}}};
  const std::vector<std::string> prompts = {"The supervisor",
                                            "Once",
                                            "Hello, world! This",
                                            "The supervisor speaks",
                                            "A",
                                            "When the worker crashes, the",
                                            "The quick brown fox",
                                            "Ask for more",
                                            "The worker holds the model"};
  std::vector<std::string> bodies;
  for (std::size_t i = 0; i < params.size(); ++i) {
    bodies.push_back(json{{"text_input", prompts[i]}, {"parameters", params[i]}}.dump());
  }
  return bodies;
}

TEST(Batching, ConcurrentGenerationsMatchTheirSoloRuns) {
  Server server(
      {"--model", model_path("demo.pt"), "--max-batch-size", "8", "--enable-fault-injection"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto bodies = mixed_generations();
  std::vector<json> solo;
  for (const auto& body : bodies) {
    const auto r = server.post("/v2/models/demo/generate", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(batch_size(r), 1);
    solo.push_back(r.json());
  }
  // Sent while the worker sleeps in another request, they all wait and start together.
  const auto together =
      post_all_while_the_worker_sleeps(server, "/v2/models/demo/generate", bodies[0], bodies);
  int batched = 0;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    ASSERT_EQ(together[i].status, 200) << together[i].body;
    const auto j = together[i].json();
    EXPECT_EQ(j["text_output"], solo[i]["text_output"]) << bodies[i];
    EXPECT_EQ(j["finish_reason"], solo[i]["finish_reason"]) << bodies[i];
    EXPECT_EQ(j["usage"], solo[i]["usage"]) << bodies[i];
    if (batch_size(together[i]) > 1) ++batched;
  }
  EXPECT_GT(batched, 0) << "no request shared a decode step";
}

json classifier_request(int rows, float offset) {
  json data = json::array();
  for (int i = 0; i < rows * 4; ++i) data.push_back(offset + 0.37f * static_cast<float>(i % 7));
  return {
      {"inputs",
       json::array({{{"name", "x"}, {"datatype", "FP32"}, {"shape", {rows, 4}}, {"data", data}}})}};
}

void expect_same_outputs(const json& a, const json& b) {
  ASSERT_EQ(a["outputs"].size(), b["outputs"].size());
  for (std::size_t k = 0; k < a["outputs"].size(); ++k) {
    const auto& x = a["outputs"][k];
    const auto& y = b["outputs"][k];
    EXPECT_EQ(x["name"], y["name"]);
    EXPECT_EQ(x["shape"], y["shape"]);
    ASSERT_EQ(x["data"].size(), y["data"].size());
    for (std::size_t i = 0; i < x["data"].size(); ++i) {
      EXPECT_NEAR(x["data"][i].get<double>(), y["data"][i].get<double>(), 1e-5);
    }
  }
}

TEST(Batching, ConcurrentInfersMatchTheirSoloRuns) {
  Server server({"--model", model_path("classifier.pt"), "--max-batch-size", "8",
                 "--enable-fault-injection"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  std::vector<std::string> bodies;
  for (int i = 0; i < 12; ++i) {
    bodies.push_back(classifier_request(1 + i % 3, static_cast<float>(i) - 5.5f).dump());
  }
  std::vector<json> solo;
  for (const auto& body : bodies) {
    const auto r = server.post("/v2/models/classifier/infer", body);
    ASSERT_EQ(r.status, 200) << r.body;
    solo.push_back(r.json());
  }
  // Sent while the worker sleeps in another request, the twelve wait together and share forwards.
  const auto together =
      post_all_while_the_worker_sleeps(server, "/v2/models/classifier/infer", bodies[0], bodies);
  int batched = 0;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    ASSERT_EQ(together[i].status, 200) << together[i].body;
    expect_same_outputs(together[i].json(), solo[i]);
    if (batch_size(together[i]) > 1) ++batched;
  }
  EXPECT_GT(batched, 0) << "no request shared a forward";
}

TEST(Batching, AnOutOfMemoryBatchIsRetriedSmallerAndLosesNothing) {
  Server server({"--model", model_path("classifier.pt"), "--enable-fault-injection"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t pid = server.worker_pid();
  std::vector<std::string> bodies;
  for (int i = 0; i < 4; ++i) bodies.push_back(classifier_request(2, static_cast<float>(i)).dump());
  std::vector<json> solo;
  for (const auto& body : bodies)
    solo.push_back(server.post("/v2/models/classifier/infer", body).json());
  // Sent while the worker sleeps, the round shares forwards; its first request's batch runs out
  // of memory (a real failed allocation) whenever it is not alone, and is retried smaller.
  std::vector<std::map<std::string, std::string>> headers(bodies.size());
  headers[0]["X-Respawn-Fault"] = "oom_if_batched";
  const auto round = post_all_while_the_worker_sleeps(server, "/v2/models/classifier/infer",
                                                      bodies[1], bodies, headers);
  for (std::size_t i = 0; i < round.size(); ++i) {
    ASSERT_EQ(round[i].status, 200) << round[i].body;
    expect_same_outputs(round[i].json(), solo[i]);
  }
  EXPECT_GT(server.metric("respawn_batch_oom_retries_total"), 0) << "never batched";
  EXPECT_EQ(server.worker_pid(), pid) << "an OOM batch must not cost the worker";
}

TEST(Batching, ARequestTooLargeForTheMemoryBudgetIsRefusedWith413) {
  Server server({"--model", model_path("classifier.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t pid = server.worker_pid();
  // A budget 8 MiB above what the worker uses now.
  const auto rss_mb = server.workers()["rss_bytes"].get<std::uint64_t>() >> 20;
  const auto patch = http_request(server.port(), "PATCH", "/admin/policy",
                                  json{{"max_worker_rss_mb", rss_mb + 8}}.dump());
  ASSERT_EQ(patch.status, 200) << patch.body;
  // 12 MiB of FP32 input: the worker would hold at least that on top of what it has.
  const int rows = 768 * 1024;
  std::string huge = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[)" +
                     std::to_string(rows) + R"(,4],"data":[)";
  for (int i = 0; i < rows * 4; ++i) huge += i ? ",0" : "0";
  huge += "]}]}";
  const auto refused = server.post("/v2/models/classifier/infer", huge);
  EXPECT_EQ(refused.status, 413) << refused.body.substr(0, 300);
  EXPECT_NE(refused.json()["error"].get<std::string>().find("budget"), std::string::npos)
      << refused.body;
  // It never reached the worker, and the server goes on serving within the budget.
  const auto ok = server.post("/v2/models/classifier/infer", classifier_request(2, 1.0f).dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(server.worker_pid(), pid);
  EXPECT_TRUE(server.workers()["memory_budget"]["learned"].get<bool>());
}

TEST(Batching, CancellingOneGenerationLeavesItsBatchMatesRunning) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const int port = server.port();
  const std::string long_body =
      json{{"text_input", "The"}, {"parameters", {{"max_tokens", 400}}}}.dump();
  auto a = std::async(std::launch::async, [&] {
    return http_request(port, "POST", "/v2/models/demo/generate", long_body);
  });
  auto b = std::async(std::launch::async, [&] {
    return http_request(port, "POST", "/v2/models/demo/generate", long_body);
  });
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 2; }, seconds(10)));
  // A third client joins the running batch and leaves mid-generation.
  asio::io_context io;
  tcp::socket leaver(io);
  leaver.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::write(leaver, asio::buffer("POST /v2/models/demo/generate HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Length: " +
                                   std::to_string(long_body.size()) + "\r\n\r\n" + long_body));
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 3; }, seconds(10)));
  leaver.close();
  ASSERT_TRUE(wait_until([&] { return server.metric("respawn_requests_cancelled_total") == 1; },
                         seconds(10)))
      << server.log();
  EXPECT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 2; }, seconds(5)))
      << "the cancelled generation leaves the batch at its next step";
  for (auto* f : {&a, &b}) {
    const auto r = f->get();
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["usage"]["completion_tokens"], 400);
  }
}

#endif  // RESPAWN_HAS_WORKER

TEST(Batching, AfterACrashTheRequestsInFlightAreReplayedOneAtATime) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const int port = server.port();
  const auto post = [port](const std::string& prompt) {
    return std::async(std::launch::async, [port, prompt] {
      return http_request(port, "POST", "/v2/models/demo/generate",
                          json{{"text_input", prompt}}.dump());
    });
  };
  // The fake worker takes its requests in order: while it sleeps, the crashing request and two
  // innocent ones are in flight behind it, and all three are caught in the crash.
  auto first = post("sleep:400");
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 1; }, seconds(5)));
  auto crash = post("crash");
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 2; }, seconds(5)));
  auto a = post("innocent a");
  auto b = post("innocent b");
  EXPECT_EQ(first.get().status, 200);
  const auto c = crash.get();
  EXPECT_EQ(c.status, 502) << c.body;
  EXPECT_NE(c.body.find("quarantined"), std::string::npos) << c.body;
  for (auto* f : {&a, &b}) {
    const auto r = f->get();
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(server.metric("respawn_requests_quarantined_total"), 1);
  EXPECT_EQ(server.metric("respawn_requests_replayed_total"), 3);
}

}  // namespace
}  // namespace respawn::test
