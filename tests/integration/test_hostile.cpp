// Regression tests for the defects an outside review found (issue 9): what a hostile but fair
// client could do to the server. Each test fails on the code before its fix. Uses the fake
// worker (milliseconds per test) except where the real worker's behaviour is the point.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// --- raw sockets with real deadlines (poll), for byte-exact HTTP ----------------------------

class RawConnection {
 public:
  explicit RawConnection(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  // Reads until `until` appears in what was read (or EOF, or the deadline); returns it all.
  std::string read_until(const std::string& until, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (received_.find(until) == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[65536];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      eof_ = n == 0;
      if (n <= 0) break;
      received_.append(buf, static_cast<std::size_t>(n));
    }
    return received_;
  }
  void clear() { received_.clear(); }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  bool at_eof() const { return eof_; }  // the last read_until ended at the peer's close

 private:
  int fd_;
  bool connected_ = false;
  bool eof_ = false;
  std::string received_;
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  return std::atoi(response.substr(9, 3).c_str());
}

std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

std::uint64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

std::size_t count_lines(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string generate_body(const std::string& text) {
  return json{{"text_input", text}}.dump();
}

// A generate request as raw bytes: the extra header lines (each ending in \r\n), then the
// body with its Content-Length.
std::string raw_generate(const std::string& body, const std::string& headers = "") {
  return "POST /v2/models/demo/generate HTTP/1.1\r\nHost: localhost\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

double recycles(const Server& s, const std::string& reason) {
  return s.metric("respawn_worker_recycles_total{reason=\"" + reason + "\"}");
}

// --- 1. descriptors: Connection: close and HTTP/1.0 leak nothing ----------------------------

TEST(Hostile, ConnectionCloseAndHttp10RequestsLeakNoDescriptor) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto before = open_fds(server.pid());
  const std::string chat = R"({"messages":[{"role":"user","content":"hi"}]})";
  for (int i = 0; i < 10; ++i) {
    // http_request sends Connection: close.
    EXPECT_EQ(server.post("/v2/models/demo/generate", generate_body("a")).status, 200);
    EXPECT_EQ(server.post("/v2/models/demo/generate_stream", generate_body("b")).status, 200);
    EXPECT_EQ(server.post("/v1/chat/completions", chat).status, 200);
    EXPECT_EQ(server.post("/v2/models/demo/infer", "{}").status, 400);
    const auto old = raw_request(server.port(),
                                 "POST /v2/models/demo/generate HTTP/1.0\r\nContent-Length: 18\r\n"
                                 "\r\n{\"text_input\":\"c\"}");
    EXPECT_EQ(old.status, 200) << old.body;
  }
  // Every connection is closed by now (the server half-closes and waits for the client's FIN).
  EXPECT_TRUE(wait_until([&] { return open_fds(server.pid()) <= before; }, seconds(5)))
      << open_fds(server.pid()) << " descriptors open, " << before << " before";
}

// --- 2. out of descriptors, accept backs off and the server recovers ------------------------

TEST(Hostile, OutOfDescriptorsTheAcceptLoopBacksOffAndRecovers) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  // A connection made before the limit bites must go on being served.
  RawConnection keeper(server.port());
  ASSERT_TRUE(keeper.connected());
  ASSERT_TRUE(keeper.send("GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  ASSERT_EQ(status_of(keeper.read_until("}", seconds(5))), 200);
  rlimit normal{};
  ASSERT_EQ(::prlimit(server.pid(), RLIMIT_NOFILE, nullptr, &normal), 0);
  const rlimit limit{open_fds(server.pid()) + 4, normal.rlim_max};
  ASSERT_EQ(::prlimit(server.pid(), RLIMIT_NOFILE, &limit, nullptr), 0);
  std::vector<std::unique_ptr<RawConnection>> flood;
  for (int i = 0; i < 32; ++i) flood.push_back(std::make_unique<RawConnection>(server.port()));
  std::this_thread::sleep_for(milliseconds(1500));  // a spinning loop logs thousands of lines
  EXPECT_LE(count_lines(server.log(), "accept failed"), 2u);
  keeper.clear();
  ASSERT_TRUE(keeper.send("GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  EXPECT_EQ(status_of(keeper.read_until("}", seconds(5))), 200) << "existing connections serve";
  flood.clear();  // descriptors free up: the queued and new connections are accepted again
  ASSERT_EQ(::prlimit(server.pid(), RLIMIT_NOFILE, &normal, nullptr), 0);
  EXPECT_TRUE(wait_until([&] { return server.get("/v2/health/live").status == 200; }, seconds(5)));
}

// --- 3. quarantine: evidence, expiry, admin listing and clearing, metrics --------------------

TEST(Hostile, OutsideKillsAreNoEvidenceAgainstARequest) {
  Server server(fake_args({"--crash-loop-failures", "100"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto body = generate_body("sleep:1500");
  auto pending =
      std::async(std::launch::async, [&] { return server.post("/v2/models/demo/generate", body); });
  for (int kill = 0; kill < 2; ++kill) {
    ASSERT_TRUE(wait_until(
        [&] { return server.metric("respawn_requests_inflight") == 1 && server.worker_pid() > 0; },
        seconds(10)));
    ::kill(server.worker_pid(), SIGKILL);
    ASSERT_TRUE(wait_until([&] { return recycles(server, "crash") == kill + 1; }, seconds(10)));
  }
  const auto r = pending.get();
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_EQ(r.body.find("quarantined"), std::string::npos) << r.body;
  EXPECT_EQ(server.metric("respawn_requests_quarantined_total"), 0);
  EXPECT_EQ(server.metric("respawn_quarantine_entries"), 0);
  ASSERT_TRUE(server.wait_ready());
  EXPECT_EQ(server.post("/v2/models/demo/generate", body).status, 200) << "not refused later";
}

TEST(Hostile, AQuarantineIsListedCountedClearedAndExpires) {
  Server server(fake_args({"--enable-fault-injection", "--crash-loop-failures", "100"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const std::map<std::string, std::string> crash = {{"X-Respawn-Fault", "crash"}};
  const auto first = server.post("/v2/models/demo/generate", generate_body("x"), crash);
  EXPECT_EQ(first.status, 502) << first.body;
  EXPECT_NE(first.body.find("quarantined"), std::string::npos) << first.body;
  EXPECT_EQ(server.metric("respawn_quarantine_entries"), 1);
  const auto listed = server.get("/admin/quarantine").json();
  ASSERT_EQ(listed["quarantine"].size(), 1u) << listed.dump();
  const auto entry = listed["quarantine"][0];
  EXPECT_NE(entry["evidence"].get<std::string>().find("signal 6"), std::string::npos) << entry;
  EXPECT_EQ(entry["type"], "generate");
  EXPECT_GT(entry["expires_in_s"].get<double>(), 3500);
  // Refused at once, and counted.
  EXPECT_EQ(server.post("/v2/models/demo/generate", generate_body("x"), crash).status, 502);
  EXPECT_EQ(server.metric("respawn_quarantine_refusals_total"), 1);
  // Cleared by id; an unknown id is a 404.
  const auto id = entry["id"].get<std::string>();
  EXPECT_EQ(http_request(server.port(), "DELETE", "/admin/quarantine/ffff").status, 404);
  const auto cleared = http_request(server.port(), "DELETE", "/admin/quarantine/" + id);
  EXPECT_EQ(cleared.status, 200) << cleared.body;
  EXPECT_EQ(cleared.json()["cleared"], 1);
  EXPECT_EQ(server.metric("respawn_quarantine_entries"), 0);
  // With a short TTL, an entry goes by itself.
  ASSERT_EQ(
      http_request(server.port(), "PATCH", "/admin/policy", R"({"quarantine_ttl_s":1})").status,
      200);
  ASSERT_TRUE(server.wait_ready());
  EXPECT_EQ(server.post("/v2/models/demo/generate", generate_body("x"), crash).status, 502);
  EXPECT_EQ(server.metric("respawn_quarantine_entries"), 1);
  // The gauge follows the expiry by itself, with no admin call in between.
  EXPECT_TRUE(
      wait_until([&] { return server.metric("respawn_quarantine_entries") == 0; }, seconds(5)));
  EXPECT_TRUE(server.get("/admin/quarantine").json()["quarantine"].empty());
}

// --- 4. a client's deadline ends its request, never the worker -------------------------------

TEST(Hostile, AClientDeadlineStopsTheRequestAndKeepsTheWorker) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t worker = server.worker_pid();
  for (int i = 0; i < 3; ++i) {
    const auto r = server.post("/v2/models/demo/generate", generate_body("sleep:600"),
                               {{"X-Respawn-Timeout-Ms", "50"}});
    EXPECT_EQ(r.status, 504) << r.body;
  }
  EXPECT_EQ(server.post("/v2/models/demo/generate", generate_body("fine")).status, 200);
  EXPECT_EQ(server.worker_pid(), worker);
  EXPECT_EQ(recycles(server, "timeout"), -1) << "no worker was killed for a client's deadline";
}

TEST(Hostile, TheServersDeadlineStillEndsAWorkerStuckOnAnExpiredRequest) {
  Server server(fake_args({"--request-timeout-ms", "700"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t worker = server.worker_pid();
  const auto r = server.post("/v2/models/demo/generate", generate_body("sleep:5000"),
                             {{"X-Respawn-Timeout-Ms", "100"}});
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_TRUE(wait_until([&] { return recycles(server, "timeout") == 1; }, seconds(5)));
  EXPECT_TRUE(wait_until([&] { return process_gone(worker); }, seconds(5)));
}

// Found by the suite under load: reaping a worker blocked the I/O thread forever when epoll
// reported a reused pidfd number ready while its process still ran (a blocking waitpid in
// Boost.Process v2's async_wait). Recycling on every request with a spare hits it within a
// few dozen recycles.
TEST(Hostile, RecyclingOnEveryRequestNeverStallsTheServer) {
  Server server(fake_args({"--max-requests", "1", "--prestart-spare"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto body = generate_body("again");
  for (int i = 0; i < 150; ++i) {
    RawConnection c(server.port());
    ASSERT_TRUE(c.send(raw_generate(body, "Connection: close\r\n")));
    const auto r = c.read_until("again\"", seconds(10));
    ASSERT_EQ(status_of(r), 200) << "request " << i << ": " << r << server.log();
  }
}

// --- 5. bodies: the default limit, and memory given back after large ones --------------------

TEST(Hostile, TheDefaultBodyLimitIsEightMiB) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  // The headers alone say it is too large: the answer comes before the body is sent.
  RawConnection c(server.port());
  ASSERT_TRUE(
      c.send("POST /v2/models/demo/generate HTTP/1.1\r\nHost: localhost\r\n"
             "Content-Length: " +
             std::to_string((8u << 20) + 1) + "\r\n\r\n"));
  const auto r = c.read_until("}", seconds(5));
  EXPECT_EQ(status_of(r), 413) << r;
  EXPECT_NE(body_of(r).find("8388608 bytes"), std::string::npos) << r;
  const std::string fits =
      R"({"text_input":"x","pad":")" + std::string((8u << 20) - 64, 'a') + "\"}";
  EXPECT_EQ(server.post("/v2/models/demo/generate", fits).status, 200);
  EXPECT_EQ(server.get("/v2/health/live").status, 200);
}

// A body of 64 KiB or more with a Content-Length bypasses Beast's parser (read straight into
// the request): it must still be read whole however it is cut into packets, leave the request
// pipelined behind it for the next read, and end like any other body when cut short or stalled.
TEST(Hostile, ALargeBodyInPiecesIsReadWholeAndThePipelinedRequestAfterItIsServed) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const std::string big =
      R"({"text_input":"first","pad":")" + std::string(300000, 'a') + R"(","end":"tail"})";
  const std::string bytes = raw_generate(big) + raw_generate(generate_body("second"));
  RawConnection c(server.port());
  ASSERT_TRUE(c.connected());
  // The headers with a little of the body, then uneven pieces, the last with the next request.
  const std::size_t head = bytes.find("\r\n\r\n") + 4 + 1000;
  ASSERT_TRUE(c.send(bytes.substr(0, head)));
  std::size_t at = head;
  for (const std::size_t piece : {1u, 70000u, 65536u, 100000u}) {
    std::this_thread::sleep_for(milliseconds(20));
    ASSERT_TRUE(c.send(bytes.substr(at, piece)));
    at += piece;
  }
  ASSERT_TRUE(c.send(bytes.substr(at)));
  const auto r = c.read_until("second", seconds(10));
  EXPECT_EQ(count_lines(r, "HTTP/1.1 200"), 2u) << r.substr(0, 400);
  EXPECT_LT(r.find("first"), r.find("second")) << r.substr(0, 400);
}

TEST(Hostile, ALargeBodyCutShortIs400AndAStalledOneIsClosedAtTheReadDeadline) {
  Server server(fake_args({"--read-timeout-ms", "500"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const std::string head =
      "POST /v2/models/demo/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n";
  {
    RawConnection c(server.port());
    ASSERT_TRUE(c.send(head + std::string(100000, 'a')));
    c.shutdown_write();
    const auto r = c.read_until("}", seconds(5));
    EXPECT_EQ(status_of(r), 400) << r;
    EXPECT_NE(body_of(r).find("partial message"), std::string::npos) << r;
  }
  {
    RawConnection c(server.port());
    ASSERT_TRUE(c.send(head + std::string(100000, 'a')));
    // Nothing more is sent: the server gives up at --read-timeout-ms and closes, answering
    // nothing (the 10 s here only bounds the test).
    EXPECT_EQ(c.read_until("HTTP/1.1", seconds(10)), "");
    EXPECT_TRUE(c.at_eof());
  }
  EXPECT_EQ(server.post("/v2/models/demo/generate", generate_body("still here")).status, 200);
}

// Content-Length and then Transfer-Encoding: Beast stops reading the headers at the second.
// Reading on would take the rest of the headers for the body and leave the body's last bytes
// on the connection, to be read as a request of the client's making (request smuggling).
TEST(Hostile, ContentLengthWithTransferEncodingIs400AndClosesTheConnection) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const std::string rest = "Transfer-Encoding: chunked\r\nX-Pad: " + std::string(64, 'p') +
                           "\r\n\r\n";  // the headers after Content-Length
  std::string smuggled = "GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nX-P: ";
  smuggled += std::string(rest.size() - smuggled.size() - 4, 'q') + "\r\n\r\n";
  ASSERT_EQ(smuggled.size(), rest.size());
  const std::size_t length = 70000;
  const std::string body = std::string(length - smuggled.size(), 'a') + smuggled;
  RawConnection c(server.port());
  ASSERT_TRUE(
      c.send("POST /v2/models/demo/generate HTTP/1.1\r\nHost: localhost\r\n"
             "Content-Length: " +
             std::to_string(length) + "\r\n" + rest + body));
  const auto r = c.read_until("\"live\"", seconds(5));
  EXPECT_EQ(status_of(r), 400) << r;
  EXPECT_EQ(count_lines(r, "HTTP/1.1 "), 1u) << "the body's tail was served as a request: " << r;
  EXPECT_TRUE(c.at_eof()) << r;
  EXPECT_EQ(server.get("/v2/health/live").status, 200);
}

TEST(Hostile, ABodyAnnouncedButNotSentHoldsNoMemory) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan's allocator touches (poisons) what it hands out";
#endif
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto before = rss_kib(server.pid());
  // 24 clients each announce a body just under the 8 MiB limit and send one byte of it.
  std::vector<std::unique_ptr<RawConnection>> clients;
  for (int i = 0; i < 24; ++i) {
    clients.push_back(std::make_unique<RawConnection>(server.port()));
    ASSERT_TRUE(clients.back()->send(
        "POST /v2/models/demo/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
        std::to_string((8u << 20) - 1) + "\r\n\r\n{"));
  }
  // Served after those headers were read (one I/O thread, in order), and a little later still.
  EXPECT_EQ(server.get("/v2/health/live").status, 200);
  std::this_thread::sleep_for(milliseconds(200));
  const auto after = rss_kib(server.pid());
  EXPECT_LT(after, before + 32 * 1024) << "supervisor RSS " << after << " KiB, " << before
                                       << " KiB before: 24 x 8 MiB would be 196,608 KiB";
  clients.clear();
  EXPECT_EQ(server.post("/v2/models/demo/generate", generate_body("still here")).status, 200);
}

TEST(Hostile, MemoryOfLargeJsonBodiesIsGivenBack) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan's allocator keeps freed memory in quarantine";
#endif
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  // Many small JSON values: the worst case for the heap (nodes of a few dozen bytes each).
  std::string body = R"({"text_input":"x","pad":[)";
  while (body.size() < (7u << 20)) body += R"({"a":[1,2,3]},)";
  body += "0]}";
  const auto before = rss_kib(server.pid());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(server.post("/v2/models/demo/generate", body).status, 200);
  }
  EXPECT_TRUE(wait_until([&] { return rss_kib(server.pid()) < before + 24 * 1024; }, seconds(3)))
      << "supervisor RSS " << rss_kib(server.pid()) << " KiB, " << before << " KiB before";
}

// --- 6. admin: cross-site writes, DNS rebinding, the bearer scheme ----------------------------

TEST(Hostile, AdminRefusesCrossSiteWritesAndForeignHosts) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const int port = server.port();
  const std::string host = "127.0.0.1:" + std::to_string(port);
  // The classic CSRF: a simple cross-origin POST with text/plain.
  const auto text = http_request(port, "POST", "/admin/recycle", "x",
                                 {{"Content-Type", "text/plain"}, {"Host", host}});
  EXPECT_EQ(text.status, 415) << text.body;
  const auto origin = http_request(port, "POST", "/admin/recycle", "",
                                   {{"Origin", "http://evil.example"}, {"Host", host}});
  EXPECT_EQ(origin.status, 403) << origin.body;
  const auto site =
      http_request(port, "PATCH", "/admin/policy", "{}", {{"Sec-Fetch-Site", "cross-site"}});
  EXPECT_EQ(site.status, 403) << site.body;
  EXPECT_TRUE(origin.json()["error"].is_string());
  // DNS rebinding: a page under another name that resolves to 127.0.0.1.
  const auto rebound = http_request(port, "GET", "/admin/workers", "",
                                    {{"Host", "attacker.example:" + std::to_string(port)}});
  EXPECT_EQ(rebound.status, 403) << rebound.body;
  EXPECT_EQ(http_request(port, "GET", "/admin/workers", "", {{"Host", "localhost"}}).status, 200);
  EXPECT_EQ(http_request(port, "GET", "/admin/workers", "", {{"Host", "[::1]:1"}}).status, 200);
  // The page itself (same origin) may write.
  const auto same = http_request(port, "POST", "/admin/recycle", "",
                                 {{"Origin", "http://" + host}, {"Host", host}});
  EXPECT_EQ(same.status, 202) << same.body;
  EXPECT_EQ(recycles(server, "operator"), 1);
}

TEST(Hostile, TheBearerSchemeIsCaseInsensitive) {
  Server server(fake_args({"--admin-token", "s3cret"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  for (const char* scheme : {"Bearer", "bearer", "BEARER"}) {
    const auto r = http_request(server.port(), "GET", "/admin/workers", "",
                                {{"Authorization", std::string(scheme) + " s3cret"}});
    EXPECT_EQ(r.status, 200) << scheme;
  }
  EXPECT_EQ(
      http_request(server.port(), "GET", "/admin/workers", "", {{"Authorization", "bearer s3creT"}})
          .status,
      401);
}

// --- 8. Expect: 100-continue -------------------------------------------------------------------

TEST(Hostile, Expect100ContinueIsAnsweredBeforeTheBody) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  RawConnection c(server.port());
  ASSERT_TRUE(c.connected());
  const auto body = generate_body("go on");
  ASSERT_TRUE(
      c.send("POST /v2/models/demo/generate HTTP/1.1\r\nHost: localhost\r\n"
             "Expect: 100-continue\r\nContent-Type: application/json\r\n"
             "Content-Length: " +
             std::to_string(body.size()) + "\r\n\r\n"));
  const auto interim = c.read_until("\r\n\r\n", seconds(5));
  ASSERT_EQ(interim.rfind("HTTP/1.1 100", 0), 0u) << interim;
  c.clear();
  ASSERT_TRUE(c.send(body));
  const auto final = c.read_until("go on", seconds(5));
  EXPECT_EQ(status_of(final), 200) << final;
  RawConnection other(server.port());
  ASSERT_TRUE(
      other.send("POST /v2/models/demo/generate HTTP/1.1\r\nHost: localhost\r\n"
                 "Expect: teapot\r\nContent-Length: 2\r\n\r\n{}"));
  EXPECT_EQ(status_of(other.read_until("}", seconds(5))), 417);
}

// --- 9. a header that is not UTF-8 ----------------------------------------------------------

TEST(Hostile, AFaultHeaderThatIsNotUtf8Is400) {
  Server server(fake_args({"--enable-fault-injection"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  RawConnection c(server.port());
  const auto body = generate_body("x");
  ASSERT_TRUE(c.send(raw_generate(body, "X-Respawn-Fault: \xff\xfe\r\n")));
  const auto r = c.read_until("}", seconds(5));
  EXPECT_EQ(status_of(r), 400) << r;
  EXPECT_TRUE(json::parse(body_of(r), nullptr, false)["error"].is_string()) << r;
  EXPECT_EQ(server.get("/v2/health/live").status, 200);
}

// --- 10. respawn serve --help -----------------------------------------------------------------

TEST(Hostile, ServeHelpExitsZero) {
  const auto run = [](const std::string& args) {
    const int status = std::system((bin_path("respawn") + " " + args + " >/dev/null 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(run("serve --help"), 0);
  EXPECT_EQ(run("serve -h"), 0);
  EXPECT_EQ(run("--help"), 0);
  EXPECT_EQ(run("serve --max-queue nope"), 2);
}

// --- 11, 12. the whole body, and integers that are integers -------------------------------------

TEST(Hostile, TrailingBytesAfterANulAreRefused) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const std::string body = generate_body("x") + std::string("\0garbage", 8);
  const auto r = server.post("/v2/models/demo/generate", body);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(server.post("/v1/completions", std::string(R"({"prompt":"x"})") + '\0' + "}").status,
            400);
}

TEST(Hostile, OpenAiIntegerFieldsTakeIntegersOnly) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  for (const char* n : {"1e19", "1.9", "-1e300", "18446744073709551617", "\"1\""}) {
    const auto r = server.post("/v1/completions", std::string(R"({"prompt":"x","n":)") + n + "}");
    EXPECT_EQ(r.status, 400) << n << ": " << r.body;
  }
  EXPECT_EQ(server.post("/v1/completions", R"({"prompt":"x","n":1})").status, 200);
}

// --- 13. the documented maximum of stop strings on chat ------------------------------------------

TEST(Hostile, ChatTakesTheDocumentedEightStopStrings) {
  if (!RESPAWN_HAS_WORKER) GTEST_SKIP() << "needs the libtorch worker";
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                     {"max_tokens", 4},
                     {"stop", {"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"}}};
  const auto r = server.post("/v1/chat/completions", body.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  json nine = body;
  nine["stop"].push_back("a9");
  EXPECT_EQ(server.post("/v1/chat/completions", nine.dump()).status, 400);
}

// --- 14. HTTP/1.1 conformance ------------------------------------------------------------------

TEST(Hostile, UnknownTransferCodingIs501AndHostIsRequired) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  RawConnection gzip(server.port());
  ASSERT_TRUE(
      gzip.send("POST /v2/models/demo/generate HTTP/1.1\r\nHost: localhost\r\n"
                "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"));
  const auto g = gzip.read_until("}", seconds(5));
  EXPECT_EQ(status_of(g), 501) << g;
  RawConnection plain_gzip(server.port());
  ASSERT_TRUE(
      plain_gzip.send("POST /v2/models/demo/generate HTTP/1.1\r\nHost: localhost\r\n"
                      "Transfer-Encoding: gzip\r\n\r\n"));
  const auto pg = plain_gzip.read_until("}", seconds(5));
  EXPECT_EQ(status_of(pg), 501) << pg;
  RawConnection no_host(server.port());
  ASSERT_TRUE(no_host.send("GET /v2/health/live HTTP/1.1\r\n\r\n"));
  const auto h = no_host.read_until("}", seconds(5));
  EXPECT_EQ(status_of(h), 400) << h;
  EXPECT_EQ(raw_request(server.port(), "GET /v2/health/live HTTP/1.0\r\n\r\n").status, 200);
}

TEST(Hostile, AnHttp10ClientGetsAStreamWithoutChunkedEncoding) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  RawConnection c(server.port());
  const auto body = generate_body("streamed");
  ASSERT_TRUE(c.send("POST /v2/models/demo/generate_stream HTTP/1.0\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body));
  const auto r = c.read_until("never appears", seconds(5));  // the server closes to end it
  EXPECT_EQ(r.rfind("HTTP/1.0 200", 0), 0u) << r;
  EXPECT_EQ(r.find("Transfer-Encoding"), std::string::npos) << r;
  const auto events = body_of(r);
  EXPECT_EQ(events.rfind("data: {", 0), 0u) << r;
  EXPECT_NE(events.find("streamed"), std::string::npos) << r;
  EXPECT_EQ(events.substr(events.size() - 2), "\n\n") << r;
}

TEST(Hostile, AGenerateAnswerCarriesTheModelVersion) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto r = server.post("/v2/models/demo/generate", generate_body("v"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["model_version"], "1");
}

}  // namespace
}  // namespace respawn::test
