// A client that disconnects before its answer: its queued request is dropped, its in-flight
// generation stops within a decode step, and the worker serves on. Pipelined requests on a
// live connection are not mistaken for a disconnect.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <future>

#include "harness.hpp"

namespace respawn::test {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::seconds;

std::string post_bytes(const std::string& body, bool close = false) {
  return "POST /v2/models/demo/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
}

// Sends a request and hangs up without waiting for the answer.
void send_and_leave(int port, const std::string& body) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::write(socket, asio::buffer(post_bytes(body)));
  socket.close();
}

TEST(Cancel, AQueuedRequestWhoseClientLeftIsDropped) {
  Server server(fake_args({"--max-batch-size", "1"}));  // one in flight, the next one queued
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const int port = server.port();
  auto busy = std::async(std::launch::async, [port] {
    return http_request(port, "POST", "/v2/models/demo/generate", R"({"text_input":"sleep:800"})");
  });
  ASSERT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 1; }, seconds(5)));
  send_and_leave(port, R"({"text_input":"abandoned"})");
  EXPECT_TRUE(wait_until([&] { return server.metric("respawn_requests_cancelled_total") == 1; },
                         seconds(5)));
  EXPECT_EQ(server.metric("respawn_queue_depth"), 0);
  EXPECT_EQ(busy.get().status, 200);
  EXPECT_EQ(server.metric(R"(respawn_requests_total{route="generate",code="499"})"), 1);
}

TEST(Cancel, PipelinedRequestsAreAnsweredNotCancelled) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  asio::write(socket, asio::buffer(post_bytes(R"({"text_input":"sleep:200"})") +
                                   post_bytes(R"({"text_input":"second"})", true)));
  std::string all;
  boost::system::error_code ec;
  char buf[4096];
  while (!ec) {
    const auto n = socket.read_some(asio::buffer(buf), ec);
    all.append(buf, n);
  }
  EXPECT_NE(all.find("sleep:200"), std::string::npos) << all;
  EXPECT_NE(all.find("second"), std::string::npos) << all;
  EXPECT_EQ(server.metric("respawn_requests_cancelled_total"), 0);
}

#if RESPAWN_HAS_WORKER
TEST(Cancel, AnInFlightGenerationStopsWhenItsClientLeaves) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t pid = server.worker_pid();
  // 4096 tokens take many seconds here; the cancel arrives after the first few.
  send_and_leave(server.port(), R"({"text_input":"The","parameters":{"max_tokens":4096}})");
  ASSERT_TRUE(wait_until([&] { return server.metric("respawn_requests_cancelled_total") == 1; },
                         seconds(5)));
  EXPECT_TRUE(
      wait_until([&] { return server.metric("respawn_requests_inflight") == 0; }, seconds(3)))
      << "the worker should stop within a decode step, not finish 4096 tokens";
  const auto next = server.post("/v2/models/demo/generate", R"({"text_input":"Hello"})");
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(server.worker_pid(), pid) << "cancelling is not a reason to recycle";
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1);
}
#endif

}  // namespace
}  // namespace respawn::test
