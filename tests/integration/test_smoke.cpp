// `respawn smoke` end to end: the real binary runs a suite against a server it starts itself
// (or one given by --url) with the fake worker, and its exit code, reports and worker pids are
// checked. The fake worker echoes a generate prompt back as text_output.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct SmokeResult {
  int exit_code = -1;  // -1: killed after the time limit, or did not exit normally
  std::string out;
  std::string err;
};

// A per-test directory, removed afterwards (with whatever the run left in it).
class SmokeTest : public ::testing::Test {
 protected:
  fs::path write_suite(const std::vector<json>& lines) const {
    const auto path = dir_ / "suite.jsonl";
    std::ofstream out(path);
    out << "# written by test_smoke.cpp\n";
    for (const auto& line : lines) out << line.dump() << "\n";
    return path;
  }

  fs::path report_dir() const { return dir_ / "report"; }
  json report() const {
    return json::parse(read_file(report_dir() / "report.json"), nullptr, false);
  }

  // `respawn smoke --suite SUITE --report-dir DIR ARGS...`; SIGKILLed after `limit`.
  SmokeResult run_smoke(const fs::path& suite, const std::vector<std::string>& args,
                        std::chrono::seconds limit = std::chrono::seconds(90)) const;

  // run_smoke with the fake worker and the demo model behind `--`.
  SmokeResult run_fake(const fs::path& suite, std::vector<std::string> args = {}) const {
    args.insert(args.end(), {"--", "--worker-bin", bin_path("respawn-fake-worker"), "--model",
                             model_path("demo.pt")});
    return run_smoke(suite, args);
  }

  TempDir tmp_{"respawn-smoke-test-"};
  const fs::path dir_ = tmp_.path();
};

SmokeResult SmokeTest::run_smoke(const fs::path& suite, const std::vector<std::string>& args,
                                 std::chrono::seconds limit) const {
  std::vector<std::string> argv_s = {bin_path("respawn"), "smoke",        "--suite",
                                     suite.string(),      "--report-dir", report_dir().string()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto out_path = dir_ / "smoke.out";
  const auto err_path = dir_ / "smoke.err";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), STDOUT_FILENO);
    ::dup2(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  SmokeResult result;
  int status = 0;
  const bool exited = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit);
  if (!exited) {
    // Its server gets SIGTERM from PR_SET_PDEATHSIG, and takes its worker along.
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

json generate(const std::string& name, const std::string& prompt, json extra = json::object()) {
  json line = {{"name", name}, {"text_input", prompt}};
  line.update(extra);
  return line;
}

// The server smoke started must be gone once smoke has exited: its port refuses connections.
void expect_server_stopped(const json& report) {
  const std::string url = report.value("url", "");
  const auto colon = url.rfind(':');
  ASSERT_NE(colon, std::string::npos) << url;
  EXPECT_EQ(http_request(std::stoi(url.substr(colon + 1)), "GET", "/v2/health/live").status, 0)
      << "the server at " << url << " still answers";
}

TEST_F(SmokeTest, PassingSuiteExitsZeroAndReportsFullSuccess) {
  const auto suite = write_suite({
      {{"name", "ready"}, {"path", "/v2/health/ready"}, {"expect_contains", "true"}},
      {{"name", "metadata"}, {"path", "/v2/models/demo"}, {"max_latency_ms", 10000}},
      generate("echo", "hello smoke", {{"expect_contains", "\"text_output\":\"hello smoke\""}}),
      {{"name", "unknown_model"}, {"path", "/v2/models/nope"}, {"expect_status", 404}},
  });
  const auto r = run_fake(suite);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out,
            "smoke: 4/4 passed (success rate 100.0%), report in " + report_dir().string() + "\n");
  const auto rep = report();
  ASSERT_TRUE(rep.is_object()) << read_file(report_dir() / "report.json");
  EXPECT_EQ(rep["total"], 4);
  EXPECT_EQ(rep["passed"], 4);
  EXPECT_EQ(rep["failed"], 0);
  EXPECT_DOUBLE_EQ(rep["success_rate"].get<double>(), 1.0);
  EXPECT_EQ(rep["mode"], "cached");
  EXPECT_EQ(rep["suite"], suite.string());
  ASSERT_EQ(rep["tests"].size(), 4u);
  EXPECT_EQ(rep["tests"][2]["name"], "echo");
  EXPECT_EQ(rep["tests"][2]["status"], 200);
  EXPECT_GT(rep["tests"][2]["latency_ms"].get<double>(), 0);
  const auto junit = read_file(report_dir() / "junit.xml");
  EXPECT_NE(junit.find("tests=\"4\" failures=\"0\""), std::string::npos) << junit;
  EXPECT_EQ(junit.find("<failure"), std::string::npos) << junit;
  EXPECT_NE(read_file(report_dir() / "report.md").find("| 3 | echo | 200 |"), std::string::npos);
  EXPECT_NE(read_file(report_dir() / "server.log").find("ready"), std::string::npos)
      << "the server's stderr goes to server.log";
  expect_server_stopped(rep);
}

TEST_F(SmokeTest, FailingCheckExitsOneAndRecordsTheFailure) {
  const auto suite = write_suite({
      generate("echo", "hello"),
      generate("wrong_text", "hello", {{"expect_contains", "goodbye"}}),
      {{"name", "wrong_status"}, {"path", "/v2/health/live"}, {"expect_status", 201}},
  });
  const auto r = run_fake(suite);
  ASSERT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("smoke: 1/3 passed (success rate 33.3%)"), std::string::npos) << r.out;
  const auto rep = report();
  ASSERT_TRUE(rep.is_object());
  EXPECT_EQ(rep["passed"], 1);
  EXPECT_EQ(rep["failed"], 2);
  EXPECT_NEAR(rep["success_rate"].get<double>(), 1.0 / 3.0, 1e-9);
  EXPECT_EQ(rep["tests"][0]["passed"], true);
  EXPECT_EQ(rep["tests"][1]["passed"], false);
  ASSERT_EQ(rep["tests"][1]["failures"].size(), 1u);
  EXPECT_NE(rep["tests"][1]["failures"][0].get<std::string>().find("\"goodbye\""),
            std::string::npos);
  EXPECT_EQ(rep["tests"][2]["status"], 200);
  EXPECT_NE(rep["tests"][2]["failures"][0].get<std::string>().find("expected 201"),
            std::string::npos);
  const auto junit = read_file(report_dir() / "junit.xml");
  EXPECT_NE(junit.find("tests=\"3\" failures=\"2\""), std::string::npos) << junit;
  EXPECT_NE(junit.find("<failure message=\"response does not contain &quot;goodbye&quot;\">"),
            std::string::npos)
      << junit;
  expect_server_stopped(rep);
}

std::vector<long> worker_pids(const json& report) {
  std::vector<long> pids;
  for (const auto& t : report["tests"]) pids.push_back(t.value("worker_pid", 0L));
  return pids;
}

TEST_F(SmokeTest, RestartPerTestServesEveryTestFromAFreshWorker) {
  const auto suite = write_suite({generate("one", "a"),
                                  generate("two", "b"),
                                  {{"name", "health"}, {"path", "/v2/health/ready"}},
                                  generate("three", "c"),
                                  generate("four", "d")});
  const auto r = run_fake(suite, {"--restart-per-test"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto rep = report();
  EXPECT_EQ(rep["mode"], "restart-per-test");
  auto pids = worker_pids(rep);
  ASSERT_EQ(pids.size(), 5u);
  EXPECT_EQ(pids[2], 0) << "health is answered by the supervisor, not a worker";
  pids.erase(pids.begin() + 2);
  for (const long pid : pids) EXPECT_GT(pid, 0) << "X-Respawn-Worker-Pid missing";
  EXPECT_EQ(std::set<long>(pids.begin(), pids.end()).size(), 4u) << rep.dump();
  EXPECT_EQ(rep["distinct_worker_pids"], 4);
}

// The bundled suite (smoke/demo.jsonl) against the real worker and the demo model, in both
// modes: every test passes, and a test the worker answers with an error (an id past the
// vocabulary: 400) names its worker and uses one up like any other.
TEST_F(SmokeTest, TheBundledSuitePassesOnTheDemoModelInBothModes) {
  const fs::path suite = RESPAWN_SOURCE_DIR "/smoke/demo.jsonl";
  for (const bool restart : {true, false}) {
    std::vector<std::string> args = {"--", "--model", model_path("demo.pt")};
    if (restart) args.insert(args.begin(), "--restart-per-test");
    const auto r = run_smoke(suite, args);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << read_file(report_dir() / "server.log");
    const auto rep = report();
    ASSERT_GE(rep["total"].get<int>(), 20) << rep.dump();
    EXPECT_EQ(rep["passed"], rep["total"]);
    std::set<long> workers;
    int worker_tests = 0;
    for (const auto& t : rep["tests"]) {
      const long pid = t.value("worker_pid", 0L);
      if (t["name"] == "infer_token_past_vocab_is_400") {
        EXPECT_EQ(t["status"], 400);
        EXPECT_GT(pid, 0) << "a worker's error names the worker: " << t.dump();
      }
      if (pid > 0) ++worker_tests, workers.insert(pid);
    }
    EXPECT_GE(worker_tests, 10) << rep.dump();
    EXPECT_EQ(workers.size(), restart ? static_cast<std::size_t>(worker_tests) : 1u) << rep.dump();
    EXPECT_EQ(rep["distinct_worker_pids"], workers.size());
    expect_server_stopped(rep);
  }
}

TEST_F(SmokeTest, CachedModeReusesOneWorker) {
  const auto suite =
      write_suite({generate("one", "a"), generate("two", "b"), generate("three", "c")});
  const auto r = run_fake(suite);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto pids = worker_pids(report());
  ASSERT_EQ(pids.size(), 3u);
  EXPECT_GT(pids[0], 0);
  EXPECT_EQ(std::set<long>(pids.begin(), pids.end()).size(), 1u) << report().dump();
}

TEST_F(SmokeTest, AgainstAGivenUrlRestartPerTestRecyclesThroughTheAdminApi) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const long first = server.worker_pid();
  const auto suite = write_suite({generate("one", "a"), generate("two", "b")});
  const auto url = "http://127.0.0.1:" + std::to_string(server.port());
  const auto r = run_smoke(suite, {"--url", url, "--restart-per-test"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << server.log();
  const auto rep = report();
  EXPECT_EQ(rep["url"], url);
  const auto pids = worker_pids(rep);
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_GT(pids[0], 0);
  EXPECT_NE(pids[0], first) << "recycled before the first test too";
  EXPECT_NE(pids[0], pids[1]);
  EXPECT_FALSE(fs::exists(report_dir() / "server.log")) << "no server of its own";
  EXPECT_EQ(server.get("/v2/health/live").status, 200) << "a given server is left running";
}

TEST_F(SmokeTest, SuiteErrorsExitTwoAndNameTheLine) {
  const auto suite = dir_ / "bad.jsonl";
  std::ofstream(suite) << "{\"name\": \"a\"}\n{\"name\": \"a\"}\n";
  const auto r = run_fake(suite);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("line 2: duplicate name 'a'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(report_dir() / "report.json"));

  const auto missing = run_fake(dir_ / "missing.jsonl");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("cannot read suite"), std::string::npos) << missing.err;

  const auto usage = run_smoke(suite, {"--no-such-flag"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_NE(usage.err.find("usage: respawn smoke"), std::string::npos) << usage.err;
}

TEST_F(SmokeTest, AServerThatCannotStartExitsTwo) {
  const auto suite = write_suite({generate("one", "a")});
  const auto r = run_smoke(suite, {"--", "--worker-bin", (dir_ / "no-such-worker").string(),
                                   "--model", model_path("demo.pt")});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("server.log"), std::string::npos) << r.err;
  EXPECT_NE(read_file(report_dir() / "server.log").find("no-such-worker"), std::string::npos);
}

TEST_F(SmokeTest, AConnectionFailureIsAFailedTestWithStatusZero) {
  // A port nobody listens on: bind one, learn its number, close it.
  int port = 0;
  {
    Server probe(fake_args());
    port = probe.port();
  }
  const auto suite = write_suite({{{"name", "nobody"}, {"path", "/v2/health/live"}}});
  const auto r = run_smoke(suite, {"--url", "http://127.0.0.1:" + std::to_string(port)});
  ASSERT_EQ(r.exit_code, 1) << r.out << r.err;
  const auto rep = report();
  EXPECT_EQ(rep["tests"][0]["status"], 0);
  EXPECT_NE(rep["tests"][0]["failures"][0].get<std::string>().find("no response"),
            std::string::npos);
}

TEST_F(SmokeTest, TimeoutMsBoundsASlowRequest) {
  // The fake worker sleeps 2 s on this prompt; the request must give up after 300 ms, and the
  // run goes on (with a test the supervisor answers itself: the worker is still asleep).
  const auto suite = write_suite(
      {generate("slow", "sleep:2000"), {{"name", "next"}, {"path", "/v2/health/live"}}});
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_fake(suite, {"--timeout-ms", "300"});
  ASSERT_EQ(r.exit_code, 1) << r.out << r.err;
  const auto rep = report();
  EXPECT_EQ(rep["tests"][0]["status"], 0);
  EXPECT_EQ(rep["tests"][0]["failures"][0], "no response: timed out after 300 ms");
  EXPECT_LT(rep["tests"][0]["latency_ms"].get<double>(), 1500);
  EXPECT_EQ(rep["tests"][1]["passed"], true) << rep.dump();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

}  // namespace
}  // namespace respawn::test
