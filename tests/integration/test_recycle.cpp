// One test per recycle trigger and recovery path. Each asserts what the client got, that the
// old worker process is gone, and the recycle counter with the right reason. The fake worker
// (real protocol, no model) keeps them fast; a few use the libtorch worker and real signals.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

const std::map<std::string, std::string> kNoHeaders;

std::string prompt(const std::string& text) {
  return json{{"text_input", text}}.dump();
}

std::map<std::string, std::string> fault(const std::string& spec) {
  return {{"X-Respawn-Fault", spec}};
}

pid_t answered_by(const HttpResult& r) {
  const auto it = r.headers.find("x-respawn-worker-pid");
  return it == r.headers.end() ? 0 : std::stoi(it->second);
}

double recycles(const Server& s, const std::string& reason) {
  return s.metric("respawn_worker_recycles_total{reason=\"" + reason + "\"}");
}

// Waits for a ready worker other than `old`, and for `old` to be gone.
::testing::AssertionResult replaced(const Server& s, pid_t old) {
  const bool ok = wait_until(
      [&] {
        const auto w = s.workers();
        return w.value("state", "") == "ready" && w.value("pid", 0) != old && process_gone(old);
      },
      seconds(20));
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "worker " << old << " not replaced: " << s.workers().dump();
}

std::future<HttpResult> post_async(const Server& s, const std::string& body,
                                   std::map<std::string, std::string> headers = {}) {
  const int port = s.port();
  return std::async(std::launch::async, [port, body, headers] {
    return http_request(port, "POST", "/v2/models/demo/generate", body, headers);
  });
}

// --- planned recycles: the request finishes, the next one gets a fresh worker ---------------

TEST(Recycle, MaxRequestsReplacesTheWorkerAfterItsNthRequest) {
  Server server(fake_args({"--max-requests", "2"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto a = server.post("/v2/models/demo/generate", prompt("1"));
  const auto b = server.post("/v2/models/demo/generate", prompt("2"));
  ASSERT_EQ(a.status, 200);
  ASSERT_EQ(b.status, 200);
  EXPECT_EQ(answered_by(a), answered_by(b));
  EXPECT_TRUE(replaced(server, answered_by(a)));
  const auto c = server.post("/v2/models/demo/generate", prompt("3"));
  EXPECT_EQ(c.status, 200);
  EXPECT_NE(answered_by(c), answered_by(a));
  EXPECT_EQ(recycles(server, "max_requests"), 1);
}

TEST(Recycle, RestartPerTestServesEveryRequestWithAFreshWorker) {
  Server server(fake_args({"--max-requests", "1", "--prestart-spare"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  std::set<pid_t> pids;
  for (int i = 0; i < 4; ++i) {
    const auto r = server.post("/v2/models/demo/generate", prompt("t" + std::to_string(i)));
    ASSERT_EQ(r.status, 200) << r.body;
    pids.insert(answered_by(r));
  }
  EXPECT_EQ(pids.size(), 4u);
  EXPECT_GE(recycles(server, "max_requests"), 3);
  for (pid_t pid : pids) {
    if (pid != server.worker_pid()) {
      EXPECT_TRUE(wait_until([&] { return process_gone(pid); }, seconds(5)));
    }
  }
}

TEST(Recycle, AHotSpareTakesOverAtOnceWhenTheWorkerDies) {
  Server server(fake_args({"--prestart-spare"}), {{"RESPAWN_FAKE_LOAD_MS", "300"}});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  ASSERT_TRUE(wait_until(
      [&] {
        const auto spare = server.workers()["spare"];
        return spare.is_object() && spare.value("state", "") == "ready";
      },
      seconds(10)));
  const pid_t current = server.worker_pid();
  const pid_t spare = server.workers()["spare"].value("pid", 0);
  ::kill(current, SIGKILL);
  const auto r = server.post("/v2/models/demo/generate", prompt("failover"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(answered_by(r), spare) << "served by the spare, not by a worker loaded after the crash";
  EXPECT_TRUE(wait_until([&] { return process_gone(current); }, seconds(5)));
  EXPECT_EQ(recycles(server, "crash"), 1);
}

TEST(Recycle, MaxWorkerAgeRecyclesAnIdleWorker) {
  Server server(fake_args({"--max-worker-age-s", "1"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto first = server.post("/v2/models/demo/generate", prompt("a"));
  ASSERT_EQ(first.status, 200);
  EXPECT_TRUE(replaced(server, answered_by(first)));
  EXPECT_GE(recycles(server, "max_age"), 1);
  const auto later = server.post("/v2/models/demo/generate", prompt("b"));
  EXPECT_EQ(later.status, 200);
  EXPECT_NE(answered_by(later), answered_by(first));
}

TEST(Recycle, MemoryAboveTheLimitRecyclesAfterTheRequest) {
  Server server(fake_args({"--max-worker-rss-mb", "1"}));  // any process is above 1 MiB
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto r = server.post("/v2/models/demo/generate", prompt("grow"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(replaced(server, answered_by(r)));
  EXPECT_GE(recycles(server, "memory"), 1);
}

TEST(Recycle, OperatorRecycleIsGracefulOrImmediateWithReplay) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t first = server.worker_pid();
  const auto accepted = server.post("/admin/recycle", "");
  EXPECT_EQ(accepted.status, 202) << accepted.body;
  EXPECT_TRUE(replaced(server, first));
  EXPECT_EQ(recycles(server, "operator"), 1);

  // ?now=1 under a request: the worker is killed, the request replayed on the next one.
  const pid_t second = server.worker_pid();
  auto slow = post_async(server, prompt("sleep:800"));
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 1; }, seconds(5)));
  EXPECT_EQ(server.post("/admin/recycle?now=1", "").status, 202);
  const auto r = slow.get();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(answered_by(r), second);
  EXPECT_TRUE(process_gone(second));
  EXPECT_EQ(recycles(server, "operator"), 2);
}

// --- unplanned: SIGKILL, replay or a documented error ---------------------------------------

TEST(Recycle, HangIsDetectedAndTheRequestReplayed) {
  Server server(fake_args({"--hang-timeout-ms", "300"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old = server.worker_pid();
  auto slow = post_async(server, prompt("sleep:1500"));
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 1; }, seconds(5)));
  ::kill(old, SIGSTOP);  // a real hang: the process stops answering
  const auto r = slow.get();
  // sleep:1500 on the fresh worker exceeds the hang timeout too: it hangs twice, which is no
  // evidence that it brings workers down (a SIGSTOP from outside looks the same), so it fails
  // with 502 once its replay is used up, and is not quarantined.
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_NE(r.json().value("error", "").find("(hang)"), std::string::npos) << r.body;
  EXPECT_EQ(r.json().value("error", "").find("quarantined"), std::string::npos) << r.body;
  EXPECT_EQ(server.metric("respawn_requests_quarantined_total"), 0);
  EXPECT_TRUE(replaced(server, old));
  EXPECT_EQ(recycles(server, "hang"), 2);
  EXPECT_EQ(server.metric("respawn_requests_replayed_total"), 1);
}

TEST(Recycle, AStoppedWorkerUnderAShortRequestIsReplacedAndTheRequestSucceeds) {
  Server server(fake_args({"--hang-timeout-ms", "400"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old = server.worker_pid();
  auto slow = post_async(server, prompt("sleep:200"));
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 1; }, seconds(5)));
  ::kill(old, SIGSTOP);
  const auto r = slow.get();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(answered_by(r), old);
  EXPECT_TRUE(wait_until([&] { return process_gone(old); }, seconds(5)));
  EXPECT_EQ(recycles(server, "hang"), 1);
}

TEST(Recycle, RequestTimeoutGives504AndReplacesTheWorker) {
  // The replacement takes 600 ms to load, so the queued request's deadline passes in the queue.
  // One at a time, so that "behind" really waits in the queue (batched, it would be at the
  // worker, and its own deadline could pass there before the killed worker is reaped).
  Server server(
      fake_args({"--request-timeout-ms", "300", "--max-queue", "4", "--max-batch-size", "1"}),
      {{"RESPAWN_FAKE_LOAD_MS", "600"}});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old = server.worker_pid();
  auto running = post_async(server, prompt("sleep:2000"));
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 1; }, seconds(5)));
  auto queued = post_async(server, prompt("behind"));
  const auto r = running.get();
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_TRUE(replaced(server, old));
  EXPECT_EQ(recycles(server, "timeout"), 1);
  // The queued request had the same 300 ms budget and spent it waiting.
  const auto q = queued.get();
  EXPECT_EQ(q.status, 504) << q.body;
  EXPECT_NE(q.json().value("error", "").find("queue"), std::string::npos) << q.body;
  EXPECT_EQ(server.metric("respawn_requests_timed_out_total"), 2);
}

TEST(Recycle, RecoverableOomIs503AndKeepsTheWorker) {
  Server server(fake_args({"--enable-fault-injection"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t pid = server.worker_pid();
  const auto r = server.post("/v2/models/demo/generate", prompt("x"), fault("oom"));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.headers.count("retry-after"), 1u);
  EXPECT_EQ(server.worker_pid(), pid);
  EXPECT_EQ(server.post("/v2/models/demo/generate", prompt("ok")).status, 200);
  EXPECT_EQ(recycles(server, "oom"), -1) << "no recycle counted";
}

TEST(Recycle, UnhealthyOomAndCudaErrorsReplaceTheWorker) {
  Server server(fake_args({"--enable-fault-injection", "--replay-limit", "0"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  for (const auto& [spec, reason, status] :
       {std::tuple{"oom_fatal", "oom", 503}, std::tuple{"cuda_error", "cuda_error", 502}}) {
    const pid_t old = server.worker_pid();
    const auto r = server.post("/v2/models/demo/generate", prompt("x"), fault(spec));
    EXPECT_EQ(r.status, status) << spec << ": " << r.body;
    EXPECT_TRUE(replaced(server, old)) << spec;
    EXPECT_EQ(recycles(server, reason), 1) << spec;
  }
}

TEST(Recycle, CrashFaultIsReplayedThenQuarantinedAsPoison) {
  Server server(fake_args({"--enable-fault-injection"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old = server.worker_pid();
  const auto r = server.post("/v2/models/demo/generate", prompt("x"), fault("crash"));
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_NE(r.json().value("error", "").find("quarantined"), std::string::npos);
  EXPECT_TRUE(replaced(server, old));
  EXPECT_EQ(recycles(server, "crash"), 2);
  EXPECT_EQ(server.metric("respawn_requests_quarantined_total"), 1);
  // A client that retries the same request is refused at once: no more workers die for it.
  const auto again = server.post("/v2/models/demo/generate", prompt("x"), fault("crash"));
  EXPECT_EQ(again.status, 502);
  EXPECT_NE(again.json().value("error", "").find("identical request"), std::string::npos);
  EXPECT_EQ(recycles(server, "crash"), 2);
  EXPECT_EQ(server.workers()["workers_started"], 3);
  EXPECT_EQ(server.post("/v2/models/demo/generate", prompt("fine")).status, 200);
}

TEST(Recycle, LoadFailureAndLoadTimeoutAreCountedAndRetried) {
  Server server(fake_args({"--enable-fault-injection", "--load-timeout-ms", "300",
                           "--restart-backoff-ms", "50", "--restart-backoff-max-ms", "100"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t old = server.worker_pid();
  ASSERT_EQ(
      http_request(server.port(), "PUT", "/admin/fault", R"({"start":"slow_load:2000"})").status,
      200);
  EXPECT_EQ(server.post("/admin/recycle?now=1", "").status, 202);
  ASSERT_TRUE(wait_until([&] { return recycles(server, "load_failure") >= 1; }, seconds(10)))
      << server.log();
  EXPECT_TRUE(process_gone(old));
  EXPECT_EQ(server.get("/v2/health/ready").status, 503);
  ASSERT_EQ(http_request(server.port(), "PUT", "/admin/fault", R"({"start":null})").status, 200);
  EXPECT_TRUE(server.wait_ready(seconds(10)));
  EXPECT_EQ(server.post("/v2/models/demo/generate", prompt("back")).status, 200);
}

TEST(Recycle, CrashLoopOpensTheBreakerThenAHalfOpenProbeClosesIt) {
  Server server(fake_args({"--enable-fault-injection", "--crash-loop-failures", "2",
                           "--crash-loop-cooldown-s", "2", "--restart-backoff-ms", "20",
                           "--restart-backoff-max-ms", "40"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  ASSERT_EQ(http_request(server.port(), "PUT", "/admin/fault", R"({"start":"fail_load"})").status,
            200);
  server.post("/admin/recycle?now=1", "");
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_breaker_opened_total") >= 1; }, seconds(10)))
      << server.log();
  const auto refused = server.post("/v2/models/demo/generate", prompt("x"));
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.headers.count("retry-after"), 1u);
  EXPECT_NE(refused.json().value("error", "").find("circuit breaker"), std::string::npos);
  const auto ready = server.get("/v2/health/ready");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.json()["state"], "breaker_open");
  EXPECT_EQ(server.workers()["breaker"]["state"], "open");
  // Fix the cause; after the cooldown one probe starts, and its success closes the breaker.
  ASSERT_EQ(http_request(server.port(), "PUT", "/admin/fault", R"({"start":null})").status, 200);
  EXPECT_TRUE(server.wait_ready(seconds(10))) << server.log();
  EXPECT_EQ(server.workers()["breaker"]["state"], "closed");
  EXPECT_EQ(server.post("/v2/models/demo/generate", prompt("y")).status, 200);
}

// --- the live policy API and admin auth -----------------------------------------------------

TEST(AdminApi, PatchPolicyIsValidatedAllOrNothingAndTakesEffect) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto before = server.get("/admin/policy").json();
  EXPECT_EQ(before["max_requests"], 0);
  const auto bad = http_request(server.port(), "PATCH", "/admin/policy",
                                R"({"max_requests": 3, "hang_timeout_ms": -5})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json().value("error", "").rfind("hang_timeout_ms", 0), 0u) << bad.body;
  EXPECT_EQ(server.get("/admin/policy").json(), before) << "nothing applied";
  EXPECT_EQ(http_request(server.port(), "PATCH", "/admin/policy", R"({"nope": 1})").status, 400);
  EXPECT_EQ(http_request(server.port(), "PATCH", "/admin/policy", "[1]").status, 400);

  const auto ok = http_request(server.port(), "PATCH", "/admin/policy", R"({"max_requests": 1})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.json()["max_requests"], 1);
  const auto a = server.post("/v2/models/demo/generate", prompt("a"));
  EXPECT_TRUE(replaced(server, answered_by(a)));
  EXPECT_EQ(recycles(server, "max_requests"), 1);
}

TEST(AdminApi, PolicySourcesReachTheServerWithFlagOverEnvOverFile) {
  const auto config = std::filesystem::temp_directory_path() /
                      ("respawn-policy-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream out(config);
    out << "[policy]\nmax_requests = 7\nreplay_limit = 3\nhang_timeout_ms = 1234\n";
  }
  Server server(fake_args({"--config", config.string(), "--replay-limit", "2"}),
                {{"RESPAWN_REPLAY_LIMIT", "4"}, {"RESPAWN_HANG_TIMEOUT_MS", "2345"}});
  std::filesystem::remove(config);
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto policy = server.get("/admin/policy").json();
  EXPECT_EQ(policy["max_requests"], 7) << "file over default";
  EXPECT_EQ(policy["hang_timeout_ms"], 2345) << "env over file";
  EXPECT_EQ(policy["replay_limit"], 2) << "flag over env and file";
}

TEST(AdminApi, ATokenIsRequiredWhenConfigured) {
  Server server(fake_args({"--admin-token", "s3cret"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  EXPECT_EQ(server.get("/admin/workers").status, 401);
  const auto wrong =
      http_request(server.port(), "GET", "/admin/policy", "", {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.headers.count("www-authenticate"), 1u);
  const auto right = http_request(server.port(), "GET", "/admin/workers", "",
                                  {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(right.status, 200) << right.body;
  EXPECT_GT(right.json().value("pid", 0), 0);
  EXPECT_EQ(server.get("/v2/health/ready").status, 200) << "only admin routes need it";
}

TEST(AdminApi, FaultInjectionIsOffUnlessEnabled) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  EXPECT_EQ(http_request(server.port(), "PUT", "/admin/fault", R"({"start":"fail_load"})").status,
            404);
  const auto r = server.post("/v2/models/demo/generate", prompt("safe"), fault("crash"));
  EXPECT_EQ(r.status, 200) << "the header is ignored";
}

// --- graceful shutdown ----------------------------------------------------------------------

TEST(Shutdown, SigtermDrainsTheRequestInFlightAndRefusesNewOnes) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t worker = server.worker_pid();
  auto inflight = post_async(server, prompt("sleep:1000"));
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 1; }, seconds(5)));
  ::kill(server.pid(), SIGTERM);
  ASSERT_TRUE(wait_until([&] { return server.get("/v2/health/ready").status == 503; }, seconds(2)));
  const auto refused = server.post("/v2/models/demo/generate", prompt("late"));
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.json().value("error", "").find("shutting down"), std::string::npos);
  const auto r = inflight.get();
  EXPECT_EQ(r.status, 200) << r.body;
  const int status = server.stop(0, seconds(10));  // already signalled: just wait
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(wait_until([&] { return process_gone(worker); }, seconds(2)));
}

#if RESPAWN_HAS_WORKER
TEST(Recycle, ARealAllocationFailureInLibtorchIs503AndTheWorkerServesOn) {
  Server server({"--model", model_path("demo.pt"), "--enable-fault-injection"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t pid = server.worker_pid();
  const auto r = server.post("/v2/models/demo/generate", prompt("x"), fault("oom"));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.json().value("error", "").find("out of memory"), std::string::npos) << r.body;
  EXPECT_EQ(server.worker_pid(), pid);
  EXPECT_EQ(server.post("/v2/models/demo/generate", prompt("Hello")).status, 200);
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1);
}

TEST(Recycle, RealWorkerRestartPerTestStaysCorrect) {
  Server server({"--model", model_path("demo.pt"), "--max-requests", "1"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto body = json{{"text_input", "The supervisor"}, {"max_tokens", 12}}.dump();
  const auto a = server.post("/v2/models/demo/generate", body);
  const auto b = server.post("/v2/models/demo/generate", body);
  ASSERT_EQ(a.status, 200);
  ASSERT_EQ(b.status, 200);
  EXPECT_NE(answered_by(a), answered_by(b));
  EXPECT_EQ(a.json()["text_output"], b.json()["text_output"]);
  EXPECT_TRUE(wait_until([&] { return process_gone(answered_by(a)); }, seconds(5)));
  EXPECT_GE(recycles(server, "max_requests"), 1);
}
#endif

}  // namespace
}  // namespace respawn::test

namespace respawn::test {
namespace {

TEST(Shutdown, ASecondSigtermCutsTheDrainShort) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t worker = server.worker_pid();
  const int port = server.port();
  auto inflight = std::async(std::launch::async, [port] {
    return http_request(port, "POST", "/v2/models/demo/generate",
                        nlohmann::json{{"text_input", "sleep:20000"}}.dump());
  });
  ASSERT_TRUE(wait_until([&] { return server.metric("respawn_requests_inflight") == 1; },
                         std::chrono::seconds(5)));
  ::kill(server.pid(), SIGTERM);
  ASSERT_TRUE(wait_until([&] { return server.get("/v2/health/ready").status == 503; },
                         std::chrono::seconds(2)));
  // The default drain would wait up to 30 s for the 20 s request; the second signal won't.
  const int status = server.stop(SIGTERM, std::chrono::seconds(5));
  ASSERT_TRUE(WIFEXITED(status)) << "still running after the second SIGTERM: " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const auto r = inflight.get();
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_TRUE(wait_until([&] { return process_gone(worker); }, std::chrono::seconds(2)));
}

}  // namespace
}  // namespace respawn::test
