// Per-request deadlines and priorities: a client can ask for less time than the server's
// request_timeout_ms (never more), and higher priority is served first.
#include <gtest/gtest.h>

#include <future>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Timed {
  HttpResult result;
  Clock::time_point at;
};

std::future<Timed> post_timed(int port, const std::string& body,
                              std::map<std::string, std::string> headers = {}) {
  return std::async(std::launch::async, [port, body, headers] {
    auto r = http_request(port, "POST", "/v2/models/demo/generate", body, headers);
    return Timed{std::move(r), Clock::now()};
  });
}

TEST(Scheduling, HigherPriorityIsServedFirst) {
  Server server(fake_args({"--max-batch-size", "1"}));  // one in flight, the rest queued
  ASSERT_TRUE(server.wait_ready()) << server.log();
  auto busy = post_timed(server.port(), R"({"text_input":"sleep:500"})");
  ASSERT_TRUE(wait_until([&] { return server.metric("respawn_requests_inflight") == 1; },
                         std::chrono::seconds(5)));
  // Each takes 100 ms at the worker, so the order of answers is plain in the clients' clocks.
  auto low = post_timed(server.port(), R"({"text_input":"sleep:100"})");
  ASSERT_TRUE(wait_until([&] { return server.metric("respawn_queue_depth") == 1; },
                         std::chrono::seconds(5)));
  auto mid =
      post_timed(server.port(), R"({"text_input":"sleep:100"})", {{"X-Respawn-Priority", "4"}});
  ASSERT_TRUE(wait_until([&] { return server.metric("respawn_queue_depth") == 2; },
                         std::chrono::seconds(5)));
  // Triton's meaning in the body: 1 is the highest priority.
  auto high =
      post_timed(server.port(), R"({"text_input":"sleep:100","parameters":{"priority":1}})");
  ASSERT_TRUE(wait_until([&] { return server.metric("respawn_queue_depth") == 3; },
                         std::chrono::seconds(5)));
  const auto h = high.get(), m = mid.get(), l = low.get();
  EXPECT_EQ(busy.get().result.status, 200);
  ASSERT_EQ(h.result.status, 200);
  ASSERT_EQ(m.result.status, 200);
  ASSERT_EQ(l.result.status, 200);
  EXPECT_LT(h.at, m.at) << "Triton's priority 1 before respawn's 4";
  EXPECT_LT(m.at, l.at) << "priority 4 before the default 0, though it came later";
}

TEST(Scheduling, AClientDeadlineShorterThanTheServersGives504) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto by_header = server.post("/v2/models/demo/generate", R"({"text_input":"sleep:3000"})",
                                     {{"X-Respawn-Timeout-Ms", "200"}});
  EXPECT_EQ(by_header.status, 504) << by_header.body;
  EXPECT_NE(by_header.json().value("error", "").find("200 ms"), std::string::npos);
  ASSERT_TRUE(server.wait_ready(std::chrono::seconds(10)));
  // Triton's meaning in the body: microseconds.
  const auto by_body = server.post(
      "/v2/models/demo/generate", R"({"text_input":"sleep:3000","parameters":{"timeout":250000}})");
  EXPECT_EQ(by_body.status, 504) << by_body.body;
  EXPECT_NE(by_body.json().value("error", "").find("250 ms"), std::string::npos);
  ASSERT_TRUE(server.wait_ready(std::chrono::seconds(10)));
  // 0 is Triton's "no timeout".
  const auto none = server.post("/v2/models/demo/generate",
                                R"({"text_input":"sleep:300","parameters":{"timeout":0}})");
  EXPECT_EQ(none.status, 200) << none.body;
}

TEST(Scheduling, AClientCannotAskForMoreThanTheServersDeadline) {
  Server server(fake_args({"--request-timeout-ms", "300"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto r =
      server.post("/v2/models/demo/generate", R"({"text_input":"sleep:3000","timeout":60000000})");
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_NE(r.json().value("error", "").find("300 ms"), std::string::npos) << r.body;
}

TEST(Scheduling, BadPriorityOrTimeoutIs400) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  EXPECT_EQ(server.post("/v2/models/demo/generate", R"({"text_input":"x","priority":-1})").status,
            400);
  EXPECT_EQ(server.post("/v2/models/demo/generate", R"({"text_input":"x","timeout":1.5})").status,
            400);
  EXPECT_EQ(
      server
          .post("/v2/models/demo/generate", R"({"text_input":"x"})", {{"X-Respawn-Priority", "10"}})
          .status,
      400);
  // Triton's priorities past respawn's levels are the default, not an error.
  EXPECT_EQ(server.post("/v2/models/demo/generate", R"({"text_input":"x","priority":1000})").status,
            200);
  EXPECT_EQ(server
                .post("/v2/models/demo/generate", R"({"text_input":"x"})",
                      {{"X-Respawn-Timeout-Ms", "soon"}})
                .status,
            400);
  EXPECT_EQ(server.post("/v1/completions", R"({"prompt":"x","priority":-1})").status, 400);
}

}  // namespace
}  // namespace respawn::test
