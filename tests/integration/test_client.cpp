// respawn_client (supervisor/client/): the HTTP client against small servers of the test's own on
// loopback, and ServerProcess with /bin/sh children that print (or fail to print) the listening
// line. Every child is started by the test and reaped by pid; every wait is bounded.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include "client/http_client.hpp"
#include "client/server_process.hpp"
#include "harness.hpp"

namespace respawn::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// Serves one connection on `address`, port 0, on its own thread for 10 s at most: reads one
// request, keeps it, and answers `response` (raw bytes; empty: closes without answering).
class OneShotServer {
 public:
  OneShotServer(const std::string& address, std::string response)
      : acceptor_(io_, {asio::ip::make_address(address), 0}), response_(std::move(response)) {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      stream_.emplace(std::move(socket));
      stream_->expires_after(seconds(10));
      http::async_read(*stream_, buffer_, request_, [this](beast::error_code ec, std::size_t) {
        if (ec || response_.empty()) {
          stream_->socket().close();
          return;
        }
        asio::async_write(*stream_, asio::buffer(response_),
                          [this](beast::error_code, std::size_t) { stream_->socket().close(); });
      });
    });
    thread_ = std::thread([this] { io_.run_for(seconds(10)); });
  }
  ~OneShotServer() { join(); }
  OneShotServer(const OneShotServer&) = delete;
  OneShotServer& operator=(const OneShotServer&) = delete;

  std::string port() const { return std::to_string(acceptor_.local_endpoint().port()); }
  // The request it read; call after the client's call returned.
  const http::request<http::string_body>& request() {
    join();
    return request_;
  }

 private:
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::string response_;
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  std::thread thread_;
};

const std::string kCreated =
    "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Respawn-Worker-Pid: 42\r\n"
    "Connection: close\r\n\r\nhello";

// --- parsing --------------------------------------------------------------------------------

TEST(HttpClient, ParsesUrlsAndListeningLines) {
  const auto v4 = client::parse_http_url("http://127.0.0.1:8000/");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, "8000");
  EXPECT_EQ(v4->url(), "http://127.0.0.1:8000");
  const auto v6 = client::parse_http_url("http://[::1]:9");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->host_header(), "[::1]:9");
  EXPECT_EQ(client::parse_http_url("http://gpu-box")->port, "80");
  for (const char* bad : {"127.0.0.1:8000", "https://h:1", "http://", "http://h:0", "http://h:1/x",
                          "http://[::1", "http://u@h:1", "http://h:99999"}) {
    EXPECT_FALSE(client::parse_http_url(bad)) << bad;
  }
  const auto line = client::parse_listening_line("listening on http://[::1]:40123\n");
  ASSERT_TRUE(line);
  EXPECT_EQ(line->host, "::1");
  EXPECT_EQ(line->port, "40123");
  EXPECT_FALSE(client::parse_listening_line("listening at http://127.0.0.1:1"));
  EXPECT_FALSE(client::parse_listening_line("listening on 127.0.0.1:1"));
  EXPECT_FALSE(client::parse_listening_line(""));
}

// --- HTTP -----------------------------------------------------------------------------------

TEST(HttpClient, SendsOneRequestAndReadsStatusBodyAndLowerCaseHeaders) {
  OneShotServer server("127.0.0.1", kCreated);
  client::Request request;
  request.method = "POST";
  request.target = "/v2/x";
  request.body = R"({"a":1})";
  request.bearer_token = "tok";
  request.headers = {{"X-Extra", "1"}};
  const client::Endpoint ep{"127.0.0.1", server.port()};
  const auto reply = client::http_request(ep, request, seconds(10));
  EXPECT_EQ(reply.status, 201) << reply.error;
  EXPECT_EQ(reply.body, "hello");
  EXPECT_EQ(reply.header("x-respawn-worker-pid"), "42");
  EXPECT_EQ(reply.headers.count("X-Respawn-Worker-Pid"), 0u) << "names are lower case";
  EXPECT_EQ(reply.error, "");
  EXPECT_GT(reply.latency_ms, 0);
  const auto& seen = server.request();
  EXPECT_EQ(seen.method_string(), "POST");
  EXPECT_EQ(seen.target(), "/v2/x");
  EXPECT_EQ(seen[http::field::host], "127.0.0.1:" + server.port());
  EXPECT_EQ(seen[http::field::connection], "close");
  EXPECT_EQ(seen[http::field::authorization], "Bearer tok");
  EXPECT_EQ(seen[http::field::content_type], "application/json");
  EXPECT_EQ(seen["X-Extra"], "1");
  EXPECT_EQ(seen.body(), R"({"a":1})");
}

TEST(HttpClient, TheCallersHeadersReplaceTheDefaults) {
  OneShotServer server("127.0.0.1", kCreated);
  client::Request request;
  request.headers = {{"host", "localhost"}, {"content-type", "text/plain"}};
  request.body = "x";
  const auto reply = client::http_request({"127.0.0.1", server.port()}, request, seconds(10));
  EXPECT_EQ(reply.status, 201) << reply.error;
  const auto& seen = server.request();
  EXPECT_EQ(seen[http::field::host], "localhost");
  EXPECT_EQ(seen[http::field::content_type], "text/plain");
  EXPECT_EQ(seen.count(http::field::host), 1u);
  EXPECT_EQ(seen.count(http::field::authorization), 0u) << "no token, no Authorization";
}

TEST(HttpClient, AnIpv6EndpointGetsABracketedHostHeader) {
  std::optional<OneShotServer> server;
  try {
    server.emplace("::1", kCreated);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  const auto reply = client::http_request({"::1", server->port()}, {}, seconds(10));
  EXPECT_EQ(reply.status, 201) << reply.error;
  EXPECT_EQ(server->request()[http::field::host], "[::1]:" + server->port());
}

// The kernel completes the handshake on a listening socket nobody accepts from, so the request
// is sent and the read waits for an answer that never comes: only the deadline ends it.
TEST(HttpClient, GivesUpAtItsDeadlineWhenTheServerNeverAnswers) {
  asio::io_context io;
  tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  const client::Endpoint ep{"127.0.0.1", std::to_string(silent.local_endpoint().port())};
  const auto started = Clock::now();
  const auto reply = client::http_request(ep, {}, milliseconds(300));
  const auto took = Clock::now() - started;
  EXPECT_EQ(reply.status, 0);
  EXPECT_EQ(reply.error, "timed out after 300 ms");
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, seconds(10));
  EXPECT_GE(reply.latency_ms, 250);
}

TEST(HttpClient, ARefusedConnectionIsStatusZeroWithTheReason) {
  std::string port;
  {
    asio::io_context io;
    tcp::acceptor closed(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = std::to_string(closed.local_endpoint().port());
  }
  const auto reply = client::http_request({"127.0.0.1", port}, {}, seconds(10));
  EXPECT_EQ(reply.status, 0);
  EXPECT_EQ(reply.error.rfind("connect: ", 0), 0u) << reply.error;
}

TEST(HttpClient, AServerThatClosesWithoutAnsweringIsStatusZero) {
  OneShotServer server("127.0.0.1", "");
  const auto reply = client::http_request({"127.0.0.1", server.port()}, {}, seconds(10));
  EXPECT_EQ(reply.status, 0);
  EXPECT_EQ(reply.error.rfind("read: ", 0), 0u) << reply.error;
}

TEST(HttpClient, SendRawSendsTheBytesAsGiven) {
  OneShotServer server("127.0.0.1", kCreated);
  const auto reply = client::send_raw({"127.0.0.1", server.port()},
                                      "GET /raw HTTP/1.0\r\nX-Odd: yes\r\n\r\n", seconds(10));
  EXPECT_EQ(reply.status, 201) << reply.error;
  EXPECT_EQ(reply.body, "hello");
  const auto& seen = server.request();
  EXPECT_EQ(seen.target(), "/raw");
  EXPECT_EQ(seen.version(), 10u);
  EXPECT_EQ(seen["X-Odd"], "yes");
  EXPECT_EQ(seen.count(http::field::host), 0u) << "nothing added to raw bytes";
}

// --- ServerProcess --------------------------------------------------------------------------

// True once `pid` is no child of ours any more: reaped (by us, or by nobody if never ours).
bool reaped(pid_t pid) {
  errno = 0;
  return ::waitpid(pid, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

// A per-test directory for the children's stderr and working directory.
class ServerProcessTest : public ::testing::Test {
 protected:
  client::ServerProcessOptions sh(const std::string& script) const {
    client::ServerProcessOptions options;
    options.argv = {"/bin/sh", "-c", script};
    options.stderr_path = (dir_ / "stderr.log").string();
    options.listen_timeout = seconds(10);
    return options;
  }
  TempDir tmp_{"respawn-client-test-"};
  const fs::path dir_ = tmp_.path();
};

const std::string kListens = "echo 'listening on http://127.0.0.1:4321'; ";

TEST_F(ServerProcessTest, ReadsTheListeningLineAndStopReapsTheChild) {
  client::ServerProcess process;
  const auto ep = process.start(sh(kListens + "exec sleep 30"));
  ASSERT_TRUE(ep) << ep.error().message;
  EXPECT_EQ(ep->host, "127.0.0.1");
  EXPECT_EQ(ep->port, "4321");
  const pid_t pid = process.pid();
  ASSERT_GT(pid, 0);
  EXPECT_FALSE(process.exited());
  const int status = process.stop(SIGTERM, seconds(10));
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_EQ(process.wait_status(), status);
  EXPECT_TRUE(reaped(pid));
  EXPECT_EQ(process.pid(), pid) << "the pid is kept after the reap";
  EXPECT_TRUE(process.exited());
  EXPECT_EQ(process.stop(SIGTERM, seconds(1)), -1) << "already reaped: nothing to signal";
}

TEST_F(ServerProcessTest, AChildThatExitsBeforeListeningIsReapedWithAClearError) {
  client::ServerProcess process;
  const auto started = Clock::now();
  const auto ep = process.start(sh("echo 'no model here' >&2; exit 3"));
  ASSERT_FALSE(ep);
  EXPECT_LT(Clock::now() - started, seconds(5)) << "EOF ends the wait, not the limit";
  EXPECT_EQ(ep.error().message, "the server exited before listening (exit status 3)");
  ASSERT_TRUE(process.wait_status());
  EXPECT_TRUE(WIFEXITED(*process.wait_status()));
  EXPECT_TRUE(reaped(process.pid()));
  EXPECT_NE(read_file(dir_ / "stderr.log").find("no model here"), std::string::npos);
}

TEST_F(ServerProcessTest, AChildThatNeverListensIsKilledAndReapedAtTheDeadline) {
  client::ServerProcess process;
  auto options = sh("exec sleep 30");
  options.listen_timeout = milliseconds(300);
  const auto started = Clock::now();
  const auto ep = process.start(options);
  const auto took = Clock::now() - started;
  ASSERT_FALSE(ep);
  EXPECT_EQ(ep.error().message,
            "the server did not say 'listening on http://HOST:PORT' within 300 ms");
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, seconds(10));
  ASSERT_TRUE(process.wait_status());
  ASSERT_TRUE(WIFSIGNALED(*process.wait_status()));
  EXPECT_EQ(WTERMSIG(*process.wait_status()), SIGKILL);
  EXPECT_TRUE(reaped(process.pid()));
}

TEST_F(ServerProcessTest, AChildThatPrintsSomethingElseIsKilledAndReaped) {
  client::ServerProcess process;
  const auto ep = process.start(sh("echo 'listening on a hunch'; exec sleep 30"));
  ASSERT_FALSE(ep);
  EXPECT_NE(ep.error().message.find("printed 'listening on a hunch'"), std::string::npos)
      << ep.error().message;
  ASSERT_TRUE(process.wait_status());
  EXPECT_EQ(WTERMSIG(*process.wait_status()), SIGKILL);
  EXPECT_TRUE(reaped(process.pid()));
}

TEST_F(ServerProcessTest, AProgramThatCannotBeExecutedIsAnError) {
  client::ServerProcess process;
  client::ServerProcessOptions options;
  options.argv = {(dir_ / "no-such-server").string(), "serve"};
  const auto ep = process.start(options);
  ASSERT_FALSE(ep);
  EXPECT_NE(ep.error().message.find("cannot execute " + options.argv[0]), std::string::npos)
      << ep.error().message;
  EXPECT_EQ(process.pid(), -1) << "nothing was started";
  EXPECT_EQ(process.stop(SIGTERM, seconds(1)), -1);
}

TEST_F(ServerProcessTest, StopEscalatesToSigkillAtItsDeadline) {
  client::ServerProcess process;
  // An ignored signal stays ignored across exec: sleep shrugs off SIGTERM.
  ASSERT_TRUE(process.start(sh("trap '' TERM; " + kListens + "exec sleep 30")));
  const auto started = Clock::now();
  EXPECT_EQ(process.stop(SIGTERM, milliseconds(300)), -1);
  const auto took = Clock::now() - started;
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, seconds(10));
  ASSERT_TRUE(process.wait_status());
  EXPECT_EQ(WTERMSIG(*process.wait_status()), SIGKILL);
  EXPECT_TRUE(reaped(process.pid()));
}

TEST_F(ServerProcessTest, EnvironmentAndWorkingDirectoryReachTheChild) {
  ::setenv("RESPAWN_CLIENT_TEST_KEPT", "inherited", 1);
  client::ServerProcess process;
  auto options =
      sh("echo \"$RESPAWN_CLIENT_TEST_KEPT $RESPAWN_CLIENT_TEST_SET $HOME $(pwd -P)\" >&2; " +
         kListens + "exec sleep 30");
  options.env = {{"RESPAWN_CLIENT_TEST_SET", "set"}, {"HOME", "/nowhere"}};
  options.working_dir = dir_.string();
  ASSERT_TRUE(process.start(options));
  process.stop(SIGTERM, seconds(10));
  ::unsetenv("RESPAWN_CLIENT_TEST_KEPT");
  EXPECT_EQ(read_file(dir_ / "stderr.log"),
            "inherited set /nowhere " + fs::canonical(dir_).string() + "\n");
}

TEST_F(ServerProcessTest, TheDestructorStopsAndReapsAChildThatStillRuns) {
  pid_t pid = -1;
  const auto started = Clock::now();
  {
    client::ServerProcess process;
    ASSERT_TRUE(process.start(sh(kListens + "exec sleep 30")));
    pid = process.pid();
  }
  EXPECT_LT(Clock::now() - started, seconds(10)) << "SIGTERM ends sleep at once";
  EXPECT_TRUE(reaped(pid));
}

// The child of a process that dies without stopping it gets SIGTERM (PR_SET_PDEATHSIG).
TEST_F(ServerProcessTest, DieWithParentTakesTheChildAlong) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const auto options = [&] {
    auto o = sh(kListens + "exec sleep 30");
    o.die_with_parent = true;
    return o;
  }();
  const pid_t middle = ::fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    ::close(pipe_fds[0]);
    client::ServerProcess process;
    pid_t pid = process.start(options) ? process.pid() : -1;
    [[maybe_unused]] const auto n = ::write(pipe_fds[1], &pid, sizeof pid);
    ::_exit(0);  // no destructor: the child is left to PR_SET_PDEATHSIG
  }
  ::close(pipe_fds[1]);
  pid_t child = -1;
  pollfd p{pipe_fds[0], POLLIN, 0};
  if (::poll(&p, 1, 10000) == 1) {
    ASSERT_EQ(::read(pipe_fds[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(middle, &status, 0), middle);
  ASSERT_GT(child, 0) << "the middle process could not start its child";
  const bool gone = wait_until([&] { return process_gone(child); }, seconds(5));
  if (!gone) ::kill(child, SIGKILL);  // ours (through `middle`), by pid
  EXPECT_TRUE(gone) << "the child outlived its parent";
}

// --- the harness on top of it -----------------------------------------------------------------

TEST(Harness, AServerThatCannotStartThrowsWithWhyAndItsStderr) {
  try {
    Server server({"--no-such-flag"});
    FAIL() << "started with an unknown flag";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("server did not start: the server exited before listening (exit status"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("no-such-flag"), std::string::npos) << "its stderr is included: " << what;
  }
}

}  // namespace
}  // namespace respawn::test
