#include "smoke/smoke_runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>

#include <CLI/CLI.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "smoke/smoke_report.hpp"

namespace respawn {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kListenLimit = std::chrono::seconds(30);
constexpr auto kReadyLimit = std::chrono::seconds(60);
constexpr auto kFreshWorkerLimit = std::chrono::seconds(60);
constexpr auto kStopLimit = std::chrono::seconds(15);
constexpr auto kPollInterval = milliseconds(100);
constexpr auto kProbeTimeout = milliseconds(5000);  // one health/admin request

struct Reply {
  int status = 0;  // 0: no response; `error` says why
  std::string body;
  long worker_pid = 0;
  double latency_ms = 0;
  std::string error;
};

// Runs one async operation on `io` to completion. The client is async underneath only because
// a deadline on a blocking Asio read cannot work: Asio turns SO_RCVTIMEO's EAGAIN into an
// unbounded poll. beast::tcp_stream's expiry bounds the whole exchange instead.
template <typename Start>
beast::error_code run_op(asio::io_context& io, Start start) {
  beast::error_code result;
  start([&result](beast::error_code ec, const auto&) { result = ec; });
  io.restart();
  io.run();
  return result;
}

std::string describe(const char* step, beast::error_code ec, milliseconds timeout) {
  if (ec == beast::error::timeout)
    return "timed out after " + std::to_string(timeout.count()) + " ms";
  return std::string(step) + ": " + ec.message();
}

http::request<http::string_body> make_request(const SmokeEndpoint& ep, const std::string& method,
                                              const std::string& target, const std::string& body,
                                              const std::string& bearer) {
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, ep.host_header());
  req.set(http::field::user_agent, "respawn-smoke");
  req.set(http::field::connection, "close");
  if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
  if (!body.empty() || (method != "GET" && method != "HEAD")) {
    req.set(http::field::content_type, "application/json");  // admin writes require it
  }
  req.body() = body;
  req.prepare_payload();
  return req;
}

long header_pid(const http::response<http::string_body>& res) {
  const auto it = res.find("X-Respawn-Worker-Pid");
  if (it == res.end()) return 0;
  return std::strtol(std::string(it->value()).c_str(), nullptr, 10);
}

// One request on a fresh connection; never throws for network trouble.
Reply http_call(const SmokeEndpoint& ep, const std::string& method, const std::string& target,
                const std::string& body, milliseconds timeout, const std::string& bearer = {}) {
  Reply reply;
  const auto start = Clock::now();
  asio::io_context io;
  beast::error_code ec;
  const auto endpoints = tcp::resolver(io).resolve(ep.host, ep.port, ec);
  if (ec) {
    reply.error = "resolve " + ep.host + ": " + ec.message();
    return reply;
  }
  beast::tcp_stream stream(io);
  stream.expires_after(timeout);
  auto req = make_request(ep, method, target, body, bearer);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::uint64_t{256} << 20);
  if ((ec = run_op(io, [&](auto h) { stream.async_connect(endpoints, h); }))) {
    reply.error = describe("connect", ec, timeout);
  } else if ((ec = run_op(io, [&](auto h) { http::async_write(stream, req, h); }))) {
    reply.error = describe("write", ec, timeout);
  } else if ((ec = run_op(io, [&](auto h) { http::async_read(stream, buffer, parser, h); }))) {
    reply.error = describe("read", ec, timeout);
  } else {
    reply.status = static_cast<int>(parser.get().result_int());
    reply.body = std::move(parser.get().body());
    reply.worker_pid = header_pid(parser.get());
  }
  reply.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return reply;
}

std::string admin_token() {
  const char* token = std::getenv("RESPAWN_ADMIN_TOKEN");
  return token ? token : "";
}

// The server `respawn smoke` starts for itself. The destructor stops and reaps it, so no way
// out of run_smoke leaves a server (and its worker, which dies with it) behind.
class ChildServer {
 public:
  ChildServer() = default;
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;
  ~ChildServer() { stop(); }

  Result<SmokeEndpoint> start(std::vector<std::string> argv, const fs::path& log_path);
  bool exited();
  // SIGTERM, then SIGKILL after kStopLimit; always waits for the exit.
  void stop();

 private:
  Result<SmokeEndpoint> read_listening_line();

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
};

Result<SmokeEndpoint> ChildServer::start(std::vector<std::string> argv, const fs::path& log_path) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return make_error(ErrorKind::internal, "pipe failed");
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) {
    ::close(out[0]);
    ::close(out[1]);
    return make_error(ErrorKind::internal, "cannot write " + log_path.string());
  }
  std::vector<char*> args;  // built before fork: the child only calls async-signal-safe code
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    // If `respawn smoke` is killed, its server must not stay behind holding the GPU (and if
    // that happened before prctl, there is nobody to serve).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::execv(args[0], args.data());
    const char message[] = "respawn smoke: cannot execute the server binary\n";
    [[maybe_unused]] const auto ignored = ::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(log);
  stdout_fd_ = out[0];
  if (pid_ < 0) return make_error(ErrorKind::internal, "fork failed");
  return read_listening_line();
}

Result<SmokeEndpoint> ChildServer::read_listening_line() {
  const std::string prefix = "listening on ";
  std::string seen;
  bool closed = false;  // the server exited (or closed stdout) without listening
  const auto deadline = Clock::now() + kListenLimit;
  while (!closed && seen.find('\n') == std::string::npos && Clock::now() < deadline) {
    pollfd p{stdout_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    closed = n <= 0;
    if (!closed) seen.append(buf, static_cast<std::size_t>(n));
  }
  const auto line = seen.substr(0, seen.find('\n'));
  if (line.rfind(prefix, 0) == 0) {
    if (auto ep = parse_smoke_url(line.substr(prefix.size()))) return ep;
  }
  std::string why = closed ? "the server exited before listening"
                           : "the server did not say 'listening on http://HOST:PORT' within 30 s";
  if (!line.empty()) why += " (it printed '" + line + "')";
  return make_error(ErrorKind::unavailable, why);
}

bool ChildServer::exited() {
  if (pid_ <= 0) return true;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
  pid_ = -1;
  return true;
}

void ChildServer::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + kStopLimit;
    while (!exited() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
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

Result<bool> wait_server_ready(ChildServer& server, const SmokeEndpoint& ep,
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
  SmokeOutcome outcome{test.name, reply.status, reply.latency_ms, reply.worker_pid, {}};
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

Result<SmokeEndpoint> start_server(const SmokeOptions& o, const std::string& self_exe,
                                   ChildServer& server) {
  const auto log = (fs::path(o.report_dir) / "server.log").string();
  auto ep = server.start(serve_argv(o, self_exe), log);
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

std::string SmokeEndpoint::host_header() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + port;
}

Result<SmokeEndpoint> parse_smoke_url(const std::string& url) {
  const std::string scheme = "http://";
  auto bad = [&] {
    return make_error(ErrorKind::bad_input,
                      "--url must look like http://HOST:PORT, not '" + url + "'");
  };
  if (url.rfind(scheme, 0) != 0) return bad();
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  SmokeEndpoint ep;
  std::size_t port_at = std::string::npos;
  if (!rest.empty() && rest[0] == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) return bad();
    ep.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return bad();
      port_at = close + 2;
    }
  } else {
    const auto colon = rest.find(':');
    ep.host = rest.substr(0, colon);
    if (colon != std::string::npos) port_at = colon + 1;
  }
  ep.port = port_at == std::string::npos ? "80" : rest.substr(port_at);
  const bool digits = !ep.port.empty() && ep.port.size() <= 5 &&
                      ep.port.find_first_not_of("0123456789") == std::string::npos;
  if (ep.host.empty() || !digits || std::stoi(ep.port) == 0 || std::stoi(ep.port) > 65535 ||
      ep.host.find_first_of("/?#@ ") != std::string::npos)
    return bad();
  return ep;
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

  ChildServer server;  // declared before any return that may follow its start
  auto ep = options->url.empty() ? start_server(*options, self_exe, server)
                                 : parse_smoke_url(options->url);
  if (!ep) return fail(ep.error().message);
  const auto run = run_suite(*options, *tests, *ep);
  server.stop();  // before the reports, so server.log is complete when CI collects it
  if (auto written = write_reports(run, options->report_dir); !written) {
    return fail(written.error().message);
  }
  std::cout << summary_line(run, options->report_dir) << std::endl;
  return run.failed() == 0 ? 0 : 1;
}

}  // namespace respawn
