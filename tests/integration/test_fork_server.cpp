// The fork server (docs/architecture.md, "The fork server"): workers forked from a process that
// holds libtorch and the model are the supervisor's own children, reaped like spawned ones; the
// fork server's death, failure to load and the supervisor's own death; POST /admin/reload. Most
// use the libtorch worker; the fake worker (which speaks the same fork protocol) makes the
// 200-worker run fast.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string prompt(const std::string& text) {
  return json{{"text_input", text}, {"parameters", {{"max_tokens", 4}}}}.dump();
}

HttpResult generate(const Server& s, const std::string& text) {
  return s.post("/v2/models/demo/generate", prompt(text));
}

json fork_server(const Server& s) {
  return s.workers().value("fork_server", json());
}

pid_t fork_server_pid(const Server& s) {
  const auto f = fork_server(s);
  return f.is_object() ? f.value("pid", 0) : 0;
}

bool fork_server_ready(const Server& s) {
  const auto f = fork_server(s);
  return f.is_object() && f.value("state", "") == "ready";
}

// The pids of the processes whose parent is `parent`, and how many of them are zombies.
struct Children {
  std::vector<pid_t> pids;
  int zombies = 0;
};
Children children_of(pid_t parent) {
  Children out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto stat = read_file(entry.path() / "stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid != parent) continue;
    out.pids.push_back(std::stoi(name));
    if (state == 'Z') ++out.zombies;
  }
  return out;
}

// Within 10 s no zombie is left among the supervisor's children, and besides the fork server
// only the current worker runs (one still exiting, or killed, is waited for).
void expect_only_the_worker_and_the_fork_server_stay(const Server& server) {
  Children kids;
  EXPECT_TRUE(wait_until(
      [&] {
        kids = children_of(server.pid());
        return kids.zombies == 0 && kids.pids.size() <= 2;
      },
      std::chrono::seconds(10)))
      << kids.pids.size() << " children, " << kids.zombies << " zombies";
}

// The demo model copied into `dir`, for tests that replace the file under a running server.
std::filesystem::path copy_of_demo(const TempDir& dir) {
  const auto model = dir.path() / "demo.pt";
  std::filesystem::copy_file(model_path("demo.pt"), model);
  return model;
}

std::vector<std::string> real_args(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--model", model_path("demo.pt")};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST(ForkServer, WorkersAreForkedFromItAndAnswerLikeColdOnes) {
  Server cold(real_args({"--fork-server", "off"}));
  Server forked(real_args({"--max-requests", "1"}));
  ASSERT_TRUE(cold.wait_ready());
  ASSERT_TRUE(forked.wait_ready());
  EXPECT_TRUE(cold.workers()["fork_server"].is_null());
  EXPECT_EQ(cold.workers().value("forked", true), false);
  const auto f = fork_server(forked);
  ASSERT_TRUE(f.is_object()) << forked.workers().dump();
  EXPECT_EQ(f.value("state", ""), "ready");
  EXPECT_EQ(f.value("holds", ""), "module");  // a cpu worker shares its weights
  EXPECT_GT(f.value("rss_bytes", 0), 0);
  EXPECT_EQ(forked.workers().value("forked", false), true);
  // Every request on a new forked worker; each answers as the cold worker does.
  std::set<pid_t> workers;
  for (const char* text : {"hello", "fork", "server", "hello"}) {
    const auto want = generate(cold, text);
    const auto got = generate(forked, text);
    ASSERT_EQ(want.status, 200) << want.body;
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_EQ(got.json()["text_output"], want.json()["text_output"]) << text;
    workers.insert(std::stoi(got.headers.at("x-respawn-worker-pid")));
  }
  EXPECT_EQ(workers.size(), 4u);
  EXPECT_GE(forked.metric("respawn_worker_forks_total"), 4);
  EXPECT_EQ(cold.metric("respawn_worker_forks_total"), 0);
  EXPECT_EQ(forked.metric("respawn_fork_server_ready"), 1);
  EXPECT_GT(forked.metric("respawn_fork_server_resident_memory_bytes"), 0);
  // The fork server is the supervisor's child; so is every worker it forked.
  ASSERT_TRUE(forked.wait_ready());
  const pid_t worker = forked.worker_pid();
  const auto kids = children_of(forked.pid()).pids;
  EXPECT_NE(std::find(kids.begin(), kids.end(), fork_server_pid(forked)), kids.end());
  EXPECT_NE(std::find(kids.begin(), kids.end(), worker), kids.end()) << worker;
}

// What a GPU machine gets (the fork server holds the file, the worker deserializes it onto its
// device), run on cpu through the test hook.
TEST(ForkServer, AForkServerHoldingTheFileBytesServesTheSameAndRefusesABrokenFile) {
  TempDir dir("respawn-bytes-");
  const auto model = copy_of_demo(dir);
  const std::map<std::string, std::string> hold_bytes = {
      {"RESPAWN_FORK_SERVER_HOLDS", "file bytes"}};
  Server cold(real_args({"--fork-server", "off"}));
  Server server({"--model", model.string(), "--enable-fault-injection"}, hold_bytes);
  ASSERT_TRUE(cold.wait_ready());
  ASSERT_TRUE(server.wait_ready());
  EXPECT_EQ(fork_server(server).value("holds", ""), "file bytes") << server.workers().dump();
  EXPECT_EQ(server.workers().value("forked", false), true);
  const auto want = generate(cold, "bytes");
  const auto got = generate(server, "bytes");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json()["text_output"], want.json()["text_output"]);
  // Not a TorchScript archive: the new fork server refuses it from the table of contents alone.
  std::ofstream(model, std::ios::trunc) << "PK but not really";
  const auto reload = server.post("/admin/reload", "");
  EXPECT_EQ(reload.status, 500) << reload.body;
  EXPECT_EQ(generate(server, "bytes").status, 200);
}

TEST(ForkServer, TwoHundredForkedWorkersLeaveNoZombie) {
  Server server(fake_args({"--max-requests", "1"}));
  ASSERT_TRUE(server.wait_ready());
  ASSERT_TRUE(fork_server_ready(server));
  int ok = 0;
  for (int i = 0; i < 200; ++i) {
    const auto r = server.post("/v2/models/demo/generate", prompt("n" + std::to_string(i)));
    ok += r.status == 200;
  }
  EXPECT_EQ(ok, 200);
  EXPECT_GE(server.metric("respawn_worker_forks_total"), 200);
  EXPECT_EQ(server.metric("respawn_fork_server_failures_total"), 0);
  // Each retired worker is reaped as it exits.
  expect_only_the_worker_and_the_fork_server_stay(server);
}

TEST(ForkServer, WhenItDiesWorkersStartColdUntilItIsBack) {
  Server server(real_args({"--max-requests", "1"}));
  ASSERT_TRUE(server.wait_ready());
  const pid_t first = fork_server_pid(server);
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  // Requests go on being served throughout, by cold workers or forked ones.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(generate(server, "after").status, 200);
  ASSERT_TRUE(wait_until(
      [&] { return fork_server_ready(server) && fork_server_pid(server) != first; }, seconds(30)))
      << server.workers().dump();
  EXPECT_TRUE(process_gone(first));
  EXPECT_EQ(server.metric("respawn_fork_server_failures_total"), 1);
  EXPECT_EQ(server.metric("respawn_fork_server_starts_total"), 2);
  // The next worker comes from the new fork server again.
  const auto before = server.metric("respawn_worker_forks_total");
  EXPECT_EQ(generate(server, "again").status, 200);
  EXPECT_TRUE(wait_until([&] { return server.metric("respawn_worker_forks_total") > before; },
                         seconds(20)));
  EXPECT_NE(server.log().find("workers start cold until the fork server is back"),
            std::string::npos);
}

TEST(ForkServer, AFailedLoadFallsBackToColdWorkers) {
  Server server(real_args({"--enable-fault-injection", "--restart-backoff-ms", "50"}),
                {{"RESPAWN_FORK_SERVER_FAULT", "fail_load"}});
  ASSERT_TRUE(server.wait_ready());
  EXPECT_EQ(generate(server, "cold").status, 200);
  EXPECT_EQ(server.workers().value("forked", true), false);
  EXPECT_EQ(server.metric("respawn_worker_forks_total"), 0);
  EXPECT_GE(server.metric("respawn_fork_server_failures_total"), 1);
  EXPECT_EQ(server.metric("respawn_fork_server_ready"), 0);
  EXPECT_NE(server.log().find("injected fork server load failure"), std::string::npos);
}

// A fork server that ends between a fork and its answer leaves a worker that is the
// supervisor's child (CLONE_PARENT) with a pid the supervisor never learned: it is found and
// reaped, not left a zombie, however often that happens.
TEST(ForkServer, AWorkerForkedJustBeforeItsForkServerDiedIsReaped) {
  Server server(fake_args({"--max-requests", "1", "--restart-backoff-ms", "20"}),
                {{"RESPAWN_FAKE_FORK_SERVER", "die-after-fork"}});
  ASSERT_TRUE(server.wait_ready());
  // Each worker start finds a fork server (restarted after each death) or starts cold.
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(server.post("/v2/models/demo/generate", prompt("n" + std::to_string(i))).status, 200);
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_GE(server.metric("respawn_fork_server_failures_total"), 2);
  EXPECT_NE(server.log().find("its socket closed during a fork request"), std::string::npos);
  expect_only_the_worker_and_the_fork_server_stay(server);
  EXPECT_NE(server.log().find("a worker forked by a fork server that ended"), std::string::npos);
}

TEST(ForkServer, TheSupervisorsDeathLeavesNoProcessBehind) {
  Server server(real_args());
  ASSERT_TRUE(server.wait_ready());
  const pid_t fork_server = fork_server_pid(server);
  const pid_t worker = server.worker_pid();
  ASSERT_GT(fork_server, 0);
  ASSERT_GT(worker, 0);
  server.stop(SIGKILL);
  EXPECT_TRUE(
      wait_until([&] { return process_gone(fork_server) && process_gone(worker); }, seconds(10)));
}

TEST(ForkServer, ReloadUnderLoadLosesNothing) {
  TempDir dir("respawn-reload-");
  const auto model = copy_of_demo(dir);
  Server server({"--model", model.string()});
  ASSERT_TRUE(server.wait_ready());
  const pid_t old_fork_server = fork_server_pid(server);
  const pid_t old_worker = server.worker_pid();
  std::atomic<bool> done{false};
  std::vector<std::future<std::pair<int, int>>> clients;
  for (int c = 0; c < 4; ++c) {
    clients.push_back(std::async(std::launch::async, [&, c] {
      int ok = 0, failed = 0;
      while (!done) {
        const auto r = generate(server, "client " + std::to_string(c));
        (r.status == 200 ? ok : failed) += 1;
      }
      return std::make_pair(ok, failed);
    }));
  }
  std::this_thread::sleep_for(milliseconds(300));
  const auto reload = server.post("/admin/reload", "");
  EXPECT_EQ(reload.status, 200) << reload.body;
  EXPECT_EQ(reload.json().value("reloaded", false), true) << reload.body;
  EXPECT_TRUE(wait_until([&] { return server.worker_pid() != old_worker; }, seconds(20)));
  std::this_thread::sleep_for(milliseconds(300));
  done = true;
  int ok = 0, failed = 0;
  for (auto& c : clients) {
    const auto [o, f] = c.get();
    ok += o;
    failed += f;
  }
  EXPECT_EQ(failed, 0);
  EXPECT_GT(ok, 0);
  EXPECT_NE(fork_server_pid(server), old_fork_server);
  EXPECT_TRUE(wait_until([&] { return process_gone(old_fork_server); }, seconds(5)));
  EXPECT_EQ(server.metric("respawn_worker_recycles_total{reason=\"reload\"}"), 1);
  EXPECT_EQ(server.workers().value("forked", false), true);
}

TEST(ForkServer, AReloadOfABrokenFileKeepsTheRunningModel) {
  TempDir dir("respawn-reload-");
  const auto model = copy_of_demo(dir);
  Server server({"--model", model.string()});
  ASSERT_TRUE(server.wait_ready());
  const pid_t fork_server = fork_server_pid(server);
  const pid_t worker = server.worker_pid();
  std::ofstream(model, std::ios::trunc) << "not a model";
  const auto reload = server.post("/admin/reload", "");
  EXPECT_EQ(reload.status, 500) << reload.body;
  EXPECT_NE(reload.json().value("error", "").find("did not load again"), std::string::npos)
      << reload.body;
  EXPECT_EQ(fork_server_pid(server), fork_server);
  EXPECT_EQ(server.worker_pid(), worker);
  EXPECT_EQ(generate(server, "still here").status, 200);
}

TEST(ForkServer, ReloadWithoutItRecyclesTheWorkerWhichReadsTheFileAgain) {
  Server server(fake_args({"--fork-server", "off"}));
  ASSERT_TRUE(server.wait_ready());
  const pid_t worker = server.worker_pid();
  const auto reload = server.post("/admin/reload", "");
  EXPECT_EQ(reload.status, 200) << reload.body;
  EXPECT_TRUE(reload.json()["fork_server"].is_null());
  EXPECT_TRUE(wait_until([&] { return server.worker_pid() != worker && process_gone(worker); },
                         seconds(10)));
  EXPECT_EQ(server.metric("respawn_worker_recycles_total{reason=\"reload\"}"), 1);
}

TEST(ForkServer, SwitchingItOffLiveStopsItAndWorkersStartCold) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready());
  const pid_t fork_server = fork_server_pid(server);
  ASSERT_GT(fork_server, 0);
  EXPECT_EQ(server.workers().value("forked", false), true);
  const auto patched =
      http_request(server.port(), "PATCH", "/admin/policy", R"({"fork_server": false})",
                   {{"Content-Type", "application/json"}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_TRUE(server.workers()["fork_server"].is_null());
  EXPECT_TRUE(wait_until([&] { return process_gone(fork_server); }, seconds(5)));
  ASSERT_EQ(server.post("/admin/recycle", "").status, 202);
  EXPECT_TRUE(wait_until(
      [&] {
        const auto w = server.workers();
        return w.value("state", "") == "ready" && w.value("forked", true) == false;
      },
      seconds(10)))
      << server.workers().dump();
}

}  // namespace
}  // namespace respawn::test

namespace respawn::test {
namespace {

pid_t answered_by(const HttpResult& r) {
  const auto it = r.headers.find("x-respawn-worker-pid");
  return it == r.headers.end() ? 0 : std::stoi(it->second);
}

// A planned recycle does not wait for the batch in flight: a ready spare, or on cpu a successor
// forked as the recycle becomes due, takes the new requests at once while the retiring worker
// finishes (and answers) its own.
void expect_a_hand_over(bool spare) {
  Server server(real_args(spare
                              ? std::vector<std::string>{"--max-requests", "3", "--prestart-spare"}
                              : std::vector<std::string>{"--max-requests", "3"}));
  ASSERT_TRUE(server.wait_ready());
  ASSERT_TRUE(!spare || wait_until(
                            [&] {
                              const auto s = server.workers()["spare"];
                              return s.is_object() && s.value("state", "") == "ready";
                            },
                            seconds(20)))
      << server.workers().dump();
  const pid_t old_worker = server.worker_pid();
  const int port = server.port();
  auto long_one = std::async(std::launch::async, [port] {
    return http_request(port, "POST", "/v2/models/demo/generate",
                        json{{"text_input", "long"}, {"parameters", {{"max_tokens", 900}}}}.dump());
  });
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 1; }, seconds(10)));
  // Two more reach the limit (3) while the long one runs: the recycle is due.
  for (const char* text : {"b", "c"}) {
    const auto r = generate(server, text);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(answered_by(r), old_worker);
  }
  const auto next = generate(server, "d");
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_NE(answered_by(next), old_worker);
  EXPECT_EQ(long_one.wait_for(milliseconds(0)), std::future_status::timeout)
      << "the new worker answered only after the old one had finished";
  const auto long_answer = long_one.get();
  EXPECT_EQ(long_answer.status, 200) << long_answer.body;
  EXPECT_EQ(answered_by(long_answer), old_worker);
  EXPECT_TRUE(wait_until([&] { return process_gone(old_worker); }, seconds(10)));
  EXPECT_EQ(server.metric("respawn_worker_recycles_total{reason=\"max_requests\"}"), 1);
}

TEST(ForkServer, ARecycleHandsOverToAReadySpareWhileTheOldWorkerFinishesItsRequests) {
  expect_a_hand_over(true);
}

TEST(ForkServer, ARecycleForksTheSuccessorAtOnceOnCpuAndHandsOverToIt) {
  expect_a_hand_over(false);
}

// On cpu a recycle with nothing in flight does not wait for the old worker's exit either (it
// needs ~10 ms, and a cold start would wait for its memory): the successor is forked first.
TEST(ForkServer, ARecycleWithNothingInFlightForksTheSuccessorBeforeTheOldWorkerExits) {
  Server server(real_args({"--max-requests", "1"}));
  ASSERT_TRUE(server.wait_ready());
  const pid_t old_worker = server.worker_pid();
  const auto r = generate(server, "a");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(answered_by(r), old_worker);
  // Its log line comes just after the reap: wait for that, not for the process to be gone.
  const std::string exited = "worker " + std::to_string(old_worker) + " exited";
  ASSERT_TRUE(
      wait_until([&] { return server.log().find(exited) != std::string::npos; }, seconds(10)))
      << server.log();
  EXPECT_TRUE(process_gone(old_worker));
  ASSERT_TRUE(
      wait_until([&] { return server.workers().value("state", "") == "ready"; }, seconds(10)));
  const auto next = generate(server, "b");
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_NE(answered_by(next), old_worker);
  const auto log = server.log();
  const auto forking = log.find("forking the successor of worker " + std::to_string(old_worker));
  EXPECT_LT(forking, log.find(exited)) << log;
}

}  // namespace
}  // namespace respawn::test
