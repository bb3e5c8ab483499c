// The status page (GET / and /status) and its live feed, GET /admin/events (Server-Sent
// Events): the page is served with a strict CSP and no data; the feed is an admin route
// (loopback, token, cross-site refusals), streams a snapshot, then timeline events as they
// happen and stats every second, and holds nothing once its client has gone or the server
// drains. tests/python/test_status_page.py drives the page itself in a real browser.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace respawn::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// One open GET /admin/events: the raw bytes as they come (chunked framing and all).
class EventStream {
 public:
  EventStream(int port, const std::string& extra_headers = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close();
      return;
    }
    const std::string request =
        "GET /admin/events HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
        "\r\nAccept: text/event-stream\r\n" + extra_headers + "\r\n";
    if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      close();
    }
  }
  ~EventStream() { close(); }
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  // Reads until `needle` has arrived (true) or `timeout` passed / the server closed (false).
  bool read_until(const std::string& needle, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (text_.find(needle) == std::string::npos) {
      if (fd_ < 0) return false;
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[8192];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_by_server_ = true;
        close();
        return text_.find(needle) != std::string::npos;
      }
      text_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  // The `data:` payloads seen so far, as JSON (chunk-size lines are not `data:` lines).
  std::vector<nlohmann::json> events() const {
    std::vector<nlohmann::json> out;
    std::size_t at = 0;
    while ((at = text_.find("data: ", at)) != std::string::npos) {
      const auto end = text_.find('\n', at);
      if (end == std::string::npos) break;
      out.push_back(nlohmann::json::parse(text_.substr(at + 6, end - at - 6), nullptr, false));
      at = end;
    }
    return out;
  }
  const std::string& text() const { return text_; }
  bool closed_by_server() const { return closed_by_server_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  std::string text_;
  bool closed_by_server_ = false;
};

TEST(StatusPage, ServesTheHtmlWithAStrictCsp) {
  Server server(fake_args());
  for (const char* target : {"/", "/status"}) {
    const auto r = server.get(target);
    ASSERT_EQ(r.status, 200) << target;
    EXPECT_EQ(r.headers.at("content-type"), "text/html; charset=utf-8");
    EXPECT_EQ(r.headers.at("cache-control"), "no-store");
    const auto& csp = r.headers.at("content-security-policy");
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << csp;
    // The inline code runs under this response's nonce, and nothing is loaded from elsewhere.
    const auto nonce_at = csp.find("'nonce-");
    ASSERT_NE(nonce_at, std::string::npos) << csp;
    const auto nonce = csp.substr(nonce_at + 7, csp.find('\'', nonce_at + 7) - nonce_at - 7);
    EXPECT_GE(nonce.size(), 22u);
    EXPECT_NE(r.body.find("<script nonce=\"" + nonce + "\">"), std::string::npos);
    EXPECT_EQ(r.body.find("{{NONCE}}"), std::string::npos);
    for (const char* outside : {"src=\"http", "href=\"http", "src=\"//", "href=\"//", "url(",
                                "<script src", "fetch(\"http"}) {
      EXPECT_EQ(r.body.find(outside), std::string::npos) << outside;
    }
    for (const char* id : {"timeline", "policy-form", "recycle-graceful", "recycle-now",
                           "quarantine-clear", "worker-pid", "error"}) {
      EXPECT_NE(r.body.find("id=\"" + std::string(id) + "\""), std::string::npos) << id;
    }
  }
  // A fresh nonce every time.
  EXPECT_NE(server.get("/").headers.at("content-security-policy"),
            server.get("/").headers.at("content-security-policy"));
  const auto post = server.post("/", "{}");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.headers.at("allow"), "GET");
  EXPECT_EQ(server.metric(R"(respawn_requests_total{route="status_page",code="200"})"), 4);
}

TEST(StatusPage, EventsStreamASnapshotThenEventsAndStats) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t worker = server.worker_pid();
  EventStream stream(server.port());
  ASSERT_TRUE(stream.read_until("\"type\":\"snapshot\"", seconds(10))) << stream.text();
  EXPECT_NE(stream.text().find("Content-Type: text/event-stream"), std::string::npos);
  auto events = stream.events();
  ASSERT_FALSE(events.empty());
  const auto& snapshot = events.front();
  EXPECT_EQ(snapshot["type"], "snapshot");
  EXPECT_EQ(snapshot["workers"]["pid"], worker);
  EXPECT_TRUE(snapshot["policy"].contains("max_requests")) << snapshot.dump();
  EXPECT_TRUE(snapshot["quarantine"]["quarantine"].is_array()) << snapshot.dump();

  const auto recycle = server.post("/admin/recycle", "");
  ASSERT_EQ(recycle.status, 202) << recycle.body;
  ASSERT_TRUE(stream.read_until("\"kind\":\"recycle\"", seconds(10))) << stream.text();
  ASSERT_TRUE(stream.read_until("\"kind\":\"worker_ready\"", seconds(20))) << stream.text();
  ASSERT_TRUE(stream.read_until("\"type\":\"stats\"", seconds(5))) << stream.text();
  const auto patch =
      http_request(server.port(), "PATCH", "/admin/policy", R"({"max_requests": 77})",
                   {{"Content-Type", "application/json"}});
  ASSERT_EQ(patch.status, 200) << patch.body;
  ASSERT_TRUE(stream.read_until("\"max_requests\":77", seconds(5))) << stream.text();

  bool saw_recycle = false, saw_stats = false, saw_policy = false;
  for (const auto& e : stream.events()) {
    ASSERT_FALSE(e.is_discarded());
    if (e["type"] == "event" && e["kind"] == "recycle") {
      saw_recycle = true;
      EXPECT_EQ(e["reason"], "operator");
      EXPECT_EQ(e["pid"], worker);
      EXPECT_TRUE(e["t"].is_number_integer());
    }
    if (e["type"] == "stats") {
      saw_stats = true;
      for (const char* key : {"t", "queue_depth", "inflight", "requests", "errors",
                              "latency_p50_ms", "latency_p99_ms", "batch_sizes", "workers"}) {
        EXPECT_TRUE(e.contains(key)) << key << " " << e.dump();
      }
      EXPECT_TRUE(e["workers"].contains("pid"));
    }
    if (e["type"] == "policy") {
      saw_policy = true;
      EXPECT_EQ(e["policy"]["max_requests"], 77);
    }
  }
  EXPECT_TRUE(saw_recycle && saw_stats && saw_policy) << stream.text();
}

// The stream has no read deadline: it outlives --read-timeout-ms (its head's write once armed
// the read timer of the watch for a disconnect, which cut it after that long).
TEST(StatusPage, TheStreamOutlivesTheReadTimeout) {
  Server server(fake_args({"--read-timeout-ms", "1000", "--header-timeout-ms", "1000"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  EventStream stream(server.port());
  ASSERT_TRUE(stream.read_until("\"type\":\"snapshot\"", seconds(10))) << stream.text();
  std::this_thread::sleep_for(milliseconds(3500));
  const auto before = stream.events().size();
  // Still open, and still getting stats.
  ASSERT_TRUE(wait_until(
      [&] {
        stream.read_until("never", milliseconds(200));
        return stream.events().size() >= before + 2;
      },
      seconds(5)))
      << stream.text();
  EXPECT_FALSE(stream.closed_by_server()) << stream.text();
}

TEST(StatusPage, StatsCarryLatencyAndBatchSizesOfTheInterval) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  EventStream stream(server.port());
  ASSERT_TRUE(stream.read_until("\"type\":\"snapshot\"", seconds(10))) << stream.text();
  ASSERT_TRUE(stream.read_until("\"type\":\"stats\"", seconds(5))) << stream.text();
  const auto r = server.post("/v2/models/demo/generate", R"({"text_input":"hi"})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(wait_until(
      [&] {
        stream.read_until("\"batch_sizes\":{\"1\":1}", milliseconds(200));
        return stream.text().find("\"batch_sizes\":{\"1\":1}") != std::string::npos;
      },
      seconds(5)))
      << stream.text();
  bool saw_latency = false;
  for (const auto& e : stream.events()) {
    if (e["type"] == "stats" && e["latency_p50_ms"].is_number()) {
      saw_latency = true;
      EXPECT_GE(e["requests"].get<int>(), 1);
    }
  }
  EXPECT_TRUE(saw_latency) << stream.text();
}

TEST(StatusPage, EventsAreAnAdminRoute) {
  Server server(fake_args({"--admin-token", "s3cret"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto refused = http_request(server.port(), "GET", "/admin/events", "", {}, seconds(5));
  EXPECT_EQ(refused.status, 401) << refused.body;
  // The page itself holds no data: it is served without the token.
  EXPECT_EQ(server.get("/").status, 200);
  EventStream stream(server.port(), "Authorization: Bearer s3cret\r\n");
  EXPECT_TRUE(stream.read_until("\"type\":\"snapshot\"", seconds(10))) << stream.text();
}

TEST(StatusPage, EventsAreRefusedCrossSite) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const int port = server.port();
  const auto site = http_request(port, "GET", "/admin/events", "",
                                 {{"Sec-Fetch-Site", "cross-site"}}, seconds(5));
  EXPECT_EQ(site.status, 403) << site.body;
  const auto origin = http_request(
      port, "GET", "/admin/events", "",
      {{"Origin", "http://evil.example"}, {"Host", "127.0.0.1:" + std::to_string(port)}},
      seconds(5));
  EXPECT_EQ(origin.status, 403) << origin.body;
  const auto rebound =
      http_request(port, "GET", "/admin/events", "",
                   {{"Host", "attacker.example:" + std::to_string(port)}}, seconds(5));
  EXPECT_EQ(rebound.status, 403) << rebound.body;
  // The page's own fetch (same-origin) is served.
  EventStream stream(port, "Sec-Fetch-Site: same-origin\r\n");
  EXPECT_TRUE(stream.read_until("\"type\":\"snapshot\"", seconds(10))) << stream.text();
}

TEST(StatusPage, SubscribersAreCappedAndAClosedOneFreesItsSlot) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  std::vector<std::unique_ptr<EventStream>> streams;
  for (int i = 0; i < 16; ++i) {
    streams.push_back(std::make_unique<EventStream>(server.port()));
    ASSERT_TRUE(streams.back()->read_until("\"type\":\"snapshot\"", seconds(10))) << i;
  }
  const auto over = http_request(server.port(), "GET", "/admin/events", "", {}, seconds(5));
  EXPECT_EQ(over.status, 503) << over.body;
  // Clients that leave free their slots.
  streams[0]->close();
  streams[1]->close();
  EXPECT_TRUE(wait_until(
      [&] {
        EventStream again(server.port());
        return again.read_until("\"type\":\"snapshot\"", seconds(2));
      },
      seconds(10)));
}

TEST(StatusPage, AnOpenStreamDoesNotHoldTheDrain) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  EventStream left(server.port());
  ASSERT_TRUE(left.read_until("\"type\":\"snapshot\"", seconds(10)));
  left.close();  // a client that went away
  EventStream open(server.port());
  ASSERT_TRUE(open.read_until("\"type\":\"snapshot\"", seconds(10)));
  const auto started = Clock::now();
  const int status = server.stop(SIGTERM, seconds(10));
  EXPECT_LT(Clock::now() - started, seconds(5));
  ASSERT_NE(status, -1) << server.log();
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The open stream was ended by the server, not cut: its chunked body has its last chunk.
  EXPECT_TRUE(open.read_until("0\r\n\r\n", seconds(5))) << open.text();
}

}  // namespace
}  // namespace respawn::test
