#include "smoke/smoke_runner.hpp"

#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "client/server_process.hpp"
#include "smoke/smoke_report.hpp"

namespace respawn {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kListenLimit = std::chrono::seconds(30);
constexpr auto kReadyLimit = std::chrono::seconds(60);
constexpr auto kFreshWorkerLimit = std::chrono::seconds(60);
constexpr auto kStopLimit = std::chrono::seconds(15);
// A forked worker is ready within ~20 ms of the last test: a coarser poll would be most of the
// time between tests. Each poll is one loopback GET.
constexpr auto kPollInterval = milliseconds(10);
constexpr auto kProbeTimeout = milliseconds(5000);  // one health/admin request

// One request on a fresh connection (`Connection: close`); never throws for network trouble:
// status 0 and `error` say why no response came.
client::Reply http_call(const SmokeEndpoint& ep, const std::string& method,
                        const std::string& target, const std::string& body, milliseconds timeout,
                        const std::string& bearer = {}) {
  client::Request request;
  request.method = method;
  request.target = target;
  request.body = body;
  request.bearer_token = bearer;
  request.headers = {{"User-Agent", "respawn-smoke"}};
  return client::http_request(ep, request, timeout);
}

// X-Respawn-Worker-Pid, or 0 when the supervisor answered by itself.
long worker_pid(const client::Reply& reply) {
  return std::strtol(reply.header("x-respawn-worker-pid").c_str(), nullptr, 10);
}

std::string admin_token() {
  const char* token = std::getenv("RESPAWN_ADMIN_TOKEN");
  return token ? token : "";
}

// Polls `condition` every kPollInterval until it holds or `limit` passes.
template <typename Condition>
bool poll_until(Condition condition, Clock::duration limit) {
  const auto deadline = Clock::now() + limit;
  while (true) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollInterval);
  }
}

Result<bool> wait_server_ready(client::ServerProcess& server, const SmokeEndpoint& ep,
                               const std::string& log) {
  bool gone = false;
  const bool ready = poll_until(
      [&] {
        gone = server.exited();
        return gone || http_call(ep, "GET", "/v2/health/ready", "", kProbeTimeout).status == 200;
      },
      kReadyLimit);
  if (ready && !gone) return true;
  return make_error(
      ErrorKind::unavailable,
      std::string(gone ? "the server exited" : "the server was not ready within 60 s") + " (see " +
          log + ")");
}

struct WorkerInfo {
  long pid = 0;
  std::string state;
};

std::optional<WorkerInfo> worker_info(const SmokeEndpoint& ep) {
  const auto reply = http_call(ep, "GET", "/admin/workers", "", kProbeTimeout, admin_token());
  const auto j = nlohmann::json::parse(reply.body, nullptr, false);
  if (reply.status != 200 || !j.is_object()) return std::nullopt;
  return WorkerInfo{j.value("pid", 0L), j.value("state", std::string())};
}

// Waits for a ready worker other than `old_pid` (0: any ready worker).
bool wait_fresh_worker(const SmokeEndpoint& ep, long old_pid) {
  return poll_until(
      [&] {
        const auto info = worker_info(ep);
        return info && info->state == "ready" && info->pid != 0 && info->pid != old_pid;
      },
      kFreshWorkerLimit);
}

// --url with --restart-per-test: ask the server for a graceful recycle and wait for its result.
std::optional<std::string> recycle_worker(const SmokeEndpoint& ep) {
  const auto before = worker_info(ep);
  const auto reply = http_call(ep, "POST", "/admin/recycle", "", kProbeTimeout, admin_token());
  if (reply.status != 202) {
    const bool denied = reply.status == 401 || reply.status == 403;
    return "POST /admin/recycle answered " + std::to_string(reply.status) +
           (reply.error.empty() ? ": " + reply.body.substr(0, 200) : ": " + reply.error) +
           (denied ? " (is RESPAWN_ADMIN_TOKEN set to the server's --admin-token?)" : "");
  }
  if (!wait_fresh_worker(ep, before ? before->pid : 0))
    return std::string("no fresh ready worker within 60 s of POST /admin/recycle");
  return std::nullopt;
}

// What restart-per-test needs before a test; an error fails that test.
std::optional<std::string> prepare_test(const SmokeOptions& o, const SmokeEndpoint& ep,
                                        long last_pid) {
  if (!o.restart_per_test) return std::nullopt;
  if (!o.url.empty()) return recycle_worker(ep);
  // Our own server runs with --max-requests 1: the worker that served the last test is being
  // replaced; wait for its successor so this test neither races the recycle nor sees 503.
  if (!wait_fresh_worker(ep, last_pid))
    return std::string("no fresh ready worker within 60 s after the previous test");
  return std::nullopt;
}

SmokeOutcome run_case(const SmokeCase& test, const SmokeEndpoint& ep, milliseconds timeout) {
  const auto reply = http_call(ep, test.method, test.path, test.body, timeout);
  SmokeOutcome outcome{test.name, reply.status, reply.latency_ms, worker_pid(reply), {}};
  outcome.failures = check_response(test, reply.status, reply.body, reply.latency_ms, reply.error);
  return outcome;
}

void print_progress(const SmokeOutcome& o) {
  std::cerr << (o.passed() ? "[ pass ] " : "[ FAIL ] ") << o.name << ": status " << o.status << ", "
            << static_cast<long>(o.latency_ms) << " ms, worker " << o.worker_pid << "\n";
  for (const auto& f : o.failures) std::cerr << "         " << f << "\n";
}

SmokeRun run_suite(const SmokeOptions& o, const std::vector<SmokeCase>& tests,
                   const SmokeEndpoint& ep) {
  SmokeRun run{o.suite, o.restart_per_test ? "restart-per-test" : "cached", ep.url(), 0, {}};
  const auto start = Clock::now();
  long last_pid = 0;
  for (const auto& test : tests) {
    SmokeOutcome outcome{test.name, 0, 0, 0, {}};
    if (auto error = prepare_test(o, ep, last_pid)) {
      outcome.failures.push_back(*error);
    } else {
      outcome = run_case(test, ep, milliseconds(o.timeout_ms));
    }
    if (outcome.worker_pid != 0) last_pid = outcome.worker_pid;
    print_progress(outcome);
    run.outcomes.push_back(std::move(outcome));
  }
  run.duration_s = std::chrono::duration<double>(Clock::now() - start).count();
  return run;
}

Result<std::vector<SmokeCase>> load_suite(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(ErrorKind::bad_input, "cannot read suite " + path);
  auto suite = parse_suite(in);
  if (!suite) return make_error(ErrorKind::bad_input, path + ": " + suite.error().message);
  return suite;
}

std::vector<std::string> serve_argv(const SmokeOptions& o, const std::string& self_exe) {
  std::vector<std::string> argv = {self_exe.empty() ? "/proc/self/exe" : self_exe, "serve",
                                   "--port", "0"};
  argv.insert(argv.end(), o.serve_args.begin(), o.serve_args.end());
  // A --max-requests among the user's serve arguments would clash (CLI11 allows one).
  const bool has_limit = std::any_of(o.serve_args.begin(), o.serve_args.end(), [](const auto& a) {
    return a == "--max-requests" || a.rfind("--max-requests=", 0) == 0;
  });
  if (o.restart_per_test && !has_limit) argv.insert(argv.end(), {"--max-requests", "1"});
  return argv;
}

// Starts our own server; whatever happens, `server` reaps it (its destructor at the latest).
Result<SmokeEndpoint> start_server(const SmokeOptions& o, const std::string& self_exe,
                                   client::ServerProcess& server) {
  const auto log = (fs::path(o.report_dir) / "server.log").string();
  client::ServerProcessOptions process;
  process.argv = serve_argv(o, self_exe);
  process.stderr_path = log;
  // If `respawn smoke` is killed, its server must not stay behind holding the GPU.
  process.die_with_parent = true;
  process.listen_timeout = kListenLimit;
  auto ep = server.start(process);
  if (!ep) return make_error(ep.error().kind, ep.error().message + " (see " + log + ")");
  auto ready = wait_server_ready(server, *ep, log);
  if (!ready) return ready.error();
  return ep;
}

void add_options(CLI::App& app, SmokeOptions& o) {
  app.add_option("--suite", o.suite, "JSON Lines file of tests")->required();
  app.add_flag("--restart-per-test", o.restart_per_test, "a fresh worker for every test");
  app.add_option("--url", o.url, "use the server at http://HOST:PORT instead of starting one");
  app.add_option("--report-dir", o.report_dir, "where report.json, report.md, junit.xml go");
  app.add_option("--timeout-ms", o.timeout_ms, "limit for one request, connect to last byte")
      ->check(CLI::Range(1u, 86400000u));
}

int fail(const std::string& message) {
  std::cerr << "respawn smoke: " << message << "\n";
  return 2;
}

}  // namespace

Result<SmokeEndpoint> parse_smoke_url(const std::string& url) {
  if (auto ep = client::parse_http_url(url)) return *ep;
  return make_error(ErrorKind::bad_input,
                    "--url must look like http://HOST:PORT, not '" + url + "'");
}

Result<SmokeOptions> parse_smoke_options(const std::vector<std::string>& args) {
  SmokeOptions options;
  // Everything after `--` belongs to `serve`; CLI11 never sees it.
  const auto dashes = std::find(args.begin(), args.end(), "--");
  if (dashes != args.end()) options.serve_args.assign(dashes + 1, args.end());
  CLI::App app{"respawn smoke"};
  add_options(app, options);
  std::vector<std::string> reversed(std::make_reverse_iterator(dashes), args.rend());
  try {
    app.parse(reversed);  // CLI11 pops from the back
  } catch (const CLI::ParseError& e) {
    return make_error(ErrorKind::bad_input, e.what());
  }
  if (!options.url.empty()) {
    if (auto ep = parse_smoke_url(options.url); !ep) return ep.error();
    if (!options.serve_args.empty())
      return make_error(ErrorKind::bad_input,
                        "arguments after -- need no --url (they go to the "
                        "server that smoke starts itself)");
  }
  return options;
}

std::string smoke_help() {
  SmokeOptions options;
  CLI::App app{"respawn smoke: run a suite of requests against a respawn server and report"};
  add_options(app, options);
  return "usage: respawn smoke --suite FILE.jsonl [--restart-per-test] [--url URL]\n"
         "                     [--report-dir DIR] [--timeout-ms N] [-- SERVE_ARGS...]\n\n" +
         app.help();
}

int run_smoke(const std::vector<std::string>& args, const std::string& self_exe) {
  const auto dashes = std::find(args.begin(), args.end(), "--");
  if (std::find_if(args.begin(), dashes,
                   [](const auto& a) { return a == "-h" || a == "--help"; }) != dashes) {
    std::cout << smoke_help();
    return 0;
  }
  auto options = parse_smoke_options(args);
  if (!options) return fail(options.error().message + "\n\n" + smoke_help());
  auto tests = load_suite(options->suite);
  if (!tests) return fail(tests.error().message);
  std::error_code ec;
  fs::create_directories(options->report_dir, ec);
  if (ec) return fail("cannot create " + options->report_dir + ": " + ec.message());

  client::ServerProcess server;  // declared before any return that may follow its start
  auto ep = options->url.empty() ? start_server(*options, self_exe, server)
                                 : parse_smoke_url(options->url);
  if (!ep) return fail(ep.error().message);
  const auto run = run_suite(*options, *tests, *ep);
  // SIGTERM, SIGKILL after 15 s; before the reports, so server.log is complete for CI.
  server.stop(SIGTERM, kStopLimit);
  if (auto written = write_reports(run, options->report_dir); !written) {
    return fail(written.error().message);
  }
  std::cout << summary_line(run, options->report_dir) << std::endl;
  return run.failed() == 0 ? 0 : 1;
}

}  // namespace respawn
