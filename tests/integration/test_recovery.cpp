// The worker is disposable: killed, crashed, misbehaving or failing to load, the supervisor
// replaces it, answers the affected client with a defined error, and keeps serving. Tests
// with the real worker prove it on libtorch; the fake worker makes the faults exact and fast.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <iterator>
#include <thread>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;
using std::chrono::seconds;

std::string prompt(const std::string& text) {
  return json{{"text_input", text}}.dump();
}

#if RESPAWN_HAS_WORKER

TEST(Recovery, AfterSigkillOfTheWorkerTheServerServesAgain) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old_pid = server.worker_pid();
  ASSERT_GT(old_pid, 0);
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return process_gone(old_pid); }, seconds(5)));
  ASSERT_TRUE(wait_until(
      [&] {
        const auto w = server.workers();
        return w.value("state", "") == "ready" && w.value("pid", 0) != old_pid;
      },
      seconds(60)))
      << server.log();
  const auto res = server.post("/v2/models/demo/generate",
                               json{{"text_input", "Hello"}, {"max_tokens", 8}}.dump());
  EXPECT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(server.workers()["workers_started"], 2);
  EXPECT_EQ(server.workers()["last_recycle_reason"], "crash");
  EXPECT_EQ(server.metric(R"(respawn_worker_recycles_total{reason="crash"})"), 1);
}

TEST(Recovery, ARequestCaughtInASigkilledWorkerIsReplayedOnAFreshOne) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old_pid = server.worker_pid();
  const int port = server.port();
  auto long_request = std::async(std::launch::async, [port] {
    return http_request(port, "POST", "/v2/models/demo/generate",
                        json{{"text_input", "The"}, {"max_tokens", 400}}.dump());
  });
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 1; }, seconds(10)));
  ::kill(old_pid, SIGKILL);
  const auto replayed = long_request.get();
  EXPECT_EQ(replayed.status, 200) << replayed.body;
  EXPECT_EQ(replayed.json()["usage"]["completion_tokens"], 400);
  ASSERT_EQ(replayed.headers.count("x-respawn-worker-pid"), 1u);
  EXPECT_NE(replayed.headers.at("x-respawn-worker-pid"), std::to_string(old_pid));
  EXPECT_TRUE(process_gone(old_pid));
  EXPECT_EQ(server.metric("respawn_requests_replayed_total"), 1);
  EXPECT_EQ(server.metric(R"(respawn_worker_recycles_total{reason="crash"})"), 1);
}

TEST(Recovery, SigtermStopsTheServerAndItsWorker) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t worker = server.worker_pid();
  const int status = server.stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(wait_until([&] { return process_gone(worker); }, seconds(2)));
}

TEST(Recovery, AWorkerOrphanedBySigkillOfTheSupervisorExitsByItself) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t worker = server.worker_pid();
  server.stop(SIGKILL);
  EXPECT_TRUE(wait_until([&] { return process_gone(worker); }, seconds(2)));
}

#endif  // RESPAWN_HAS_WORKER

TEST(FakeWorker, EchoesThroughTheRealProtocol) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto res = server.post("/v2/models/demo/generate", prompt("ping"));
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.json()["text_output"], "ping");
  const json infer = {
      {"inputs", {{{"name", "a"}, {"shape", {2}}, {"datatype", "INT32"}, {"data", {7, -8}}}}}};
  const auto echoed = server.post("/v2/models/demo/infer", infer.dump());
  ASSERT_EQ(echoed.status, 200) << echoed.body;
  EXPECT_EQ(echoed.json()["outputs"][0]["data"], json({7, -8}));
}

// The request crashes its worker, is replayed, crashes the fresh one too: poison.
TEST(FakeWorker, ARequestThatCrashesTwoWorkersIsQuarantined) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old_pid = server.worker_pid();
  const auto res = server.post("/v2/models/demo/generate", prompt("crash"));
  EXPECT_EQ(res.status, 502) << res.body;
  EXPECT_NE(res.json().value("error", "").find("quarantined"), std::string::npos) << res.body;
  EXPECT_TRUE(wait_until([&] { return process_gone(old_pid); }, seconds(5)));
  ASSERT_TRUE(server.wait_ready(seconds(10)));
  EXPECT_EQ(server.post("/v2/models/demo/generate", prompt("after")).json()["text_output"],
            "after");
  EXPECT_EQ(server.metric(R"(respawn_worker_recycles_total{reason="crash"})"), 2);
  EXPECT_EQ(server.metric("respawn_requests_replayed_total"), 1);
  EXPECT_EQ(server.metric("respawn_requests_quarantined_total"), 1);
}

TEST(FakeWorker, AMalformedFrameKillsTheWorkerNotTheSupervisor) {
  Server server(fake_args({"--replay-limit", "0"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old_pid = server.worker_pid();
  // With replay off, the client gets the failure at once.
  const auto res = server.post("/v2/models/demo/generate", prompt("garbage"));
  EXPECT_EQ(res.status, 502) << res.body;
  EXPECT_TRUE(wait_until([&] { return process_gone(old_pid); }, seconds(5)));
  ASSERT_TRUE(server.wait_ready(seconds(10)));
  EXPECT_EQ(server.metric(R"(respawn_worker_recycles_total{reason="protocol"})"), 1);
  EXPECT_EQ(server.post("/v2/models/demo/generate", prompt("ok")).status, 200);
}

TEST(FakeWorker, LoadFailuresKeepReadinessOffAndBackOff) {
  Server server(fake_args({"--restart-backoff-ms", "50", "--restart-backoff-max-ms", "400"}),
                {{"RESPAWN_FAKE_MODE", "fail-load"}});
  ASSERT_TRUE(wait_until(
      [&] { return server.metric(R"(respawn_worker_recycles_total{reason="load_failure"})") >= 3; },
      seconds(10)))
      << server.log();
  const auto ready = server.get("/v2/health/ready");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.json()["ready"], false);
  // Backoff: 50, 100, 200, 400, 400 ms (+-20%) between starts, so 1.5 s holds few starts.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_LE(server.metric("respawn_worker_starts_total"), 9);
  EXPECT_NE(server.log().find("fake load failure"), std::string::npos);
}

TEST(FakeWorker, RequestsWaitInTheQueueWhileTheWorkerLoads) {
  Server server(fake_args(), {{"RESPAWN_FAKE_LOAD_MS", "500"}});
  const auto res = server.post("/v2/models/demo/generate", prompt("early"));
  EXPECT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.json()["text_output"], "early");
}

// The worker's environment: the supervisor's, plus --cuda-alloc-conf and the default OpenMP wait
// policy, handed to posix_spawn (the worker's /proc environ is what it was started with).
TEST(FakeWorker, TheWorkerGetsTheSupervisorsEnvironmentPlusItsOverrides) {
  Server server(fake_args({"--cuda-alloc-conf", "expandable_segments:True"}),
                {{"RESPAWN_TEST_MARKER", "kept"}});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  std::ifstream in("/proc/" + std::to_string(server.worker_pid()) + "/environ");
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> env;
  for (std::size_t at = 0; at < raw.size();) {
    const auto end = raw.find('\0', at);
    env.push_back(raw.substr(at, end - at));
    at = end == std::string::npos ? raw.size() : end + 1;
  }
  const auto has = [&](const std::string& entry) {
    return std::find(env.begin(), env.end(), entry) != env.end();
  };
  EXPECT_TRUE(has("PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True")) << raw;
  EXPECT_TRUE(has("OMP_WAIT_POLICY=PASSIVE")) << raw;
  EXPECT_TRUE(has("RESPAWN_TEST_MARKER=kept")) << raw;
}

}  // namespace
}  // namespace respawn::test
