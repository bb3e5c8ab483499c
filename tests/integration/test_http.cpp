// HTTP front-end behaviour, independent of the model: keep-alive, the header deadline, 405.
// Uses the fake worker so each test takes milliseconds.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "harness.hpp"

namespace respawn::test {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

tcp::socket connect(asio::io_context& io, int port) {
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  timeval tv{10, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return socket;
}

// The tests' own client: a server that accepts and never answers must not stall a test until
// ctest's limit. The kernel completes the handshake on a listening socket nobody accepts from,
// so the request is sent and the read waits for an answer that never comes.
TEST(Harness, HttpRequestGivesUpAtItsDeadlineWhenTheServerNeverAnswers) {
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  const int port = silent.local_endpoint().port();
  const auto started = std::chrono::steady_clock::now();
  const auto res =
      http_request(port, "GET", "/v2/health/live", "", {}, std::chrono::milliseconds(300));
  EXPECT_EQ(res.status, 0);
  // Generous: without the deadline the call never returns at all.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

TEST(Http, KeepAliveServesSeveralRequestsOnOneConnection) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  asio::io_context io;
  auto socket = connect(io, server.port());
  boost::beast::flat_buffer buffer;
  for (int i = 0; i < 3; ++i) {
    http::request<http::string_body> req{http::verb::post, "/v2/models/demo/generate", 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = R"({"text_input":"again"})";
    req.prepare_payload();
    http::write(socket, req);
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_TRUE(res.keep_alive());
    EXPECT_NE(res.body().find("again"), std::string::npos);
  }
}

TEST(Http, AStalledRequestIsClosedAtTheHeaderDeadline) {
  Server server(fake_args({"--header-timeout-ms", "300"}));
  ASSERT_TRUE(server.wait_ready()) << server.log();
  asio::io_context io;
  auto socket = connect(io, server.port());
  asio::write(socket, asio::buffer(std::string("GET /v2 HTTP/1.1\r\nHost: x\r\n")));
  char byte;
  boost::system::error_code ec;
  // SO_RCVTIMEO is 10 s; the server must close long before, so this read sees EOF.
  asio::read(socket, asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
  EXPECT_EQ(server.get("/v2").status, 200) << "the server keeps serving others";
}

TEST(Http, WrongMethodGets405WithAllow) {
  Server server(fake_args());
  const auto res = http_request(server.port(), "GET", "/v2/models/demo/infer");
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.headers.at("allow"), "POST");
  EXPECT_TRUE(res.json().contains("error"));
}

}  // namespace
}  // namespace respawn::test

namespace respawn::test {
namespace {

TEST(Http, HostileJsonGets400AndTheServerKeepsServing) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto non_string_type =
      server.post("/v2/models/demo/infer",
                  R"({"inputs":[{"name":"x","datatype":5,"shape":[1,4],"data":[1,2,3,4]}]})");
  EXPECT_EQ(non_string_type.status, 400) << non_string_type.body;
  const std::string deep = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":)" +
                           std::string(200000, '[') + "1" + std::string(200000, ']') + "}]}";
  const auto nested = server.post("/v2/models/demo/infer", deep);
  EXPECT_EQ(nested.status, 400) << nested.body.substr(0, 200);
  EXPECT_NE(nested.json().value("error", "").find("nests deeper"), std::string::npos);
  const auto wrong_types = server.post("/v2/models/demo/generate",
                                       R"({"text_input":"x","max_tokens":"many","stop":[1]})");
  EXPECT_EQ(wrong_types.status, 400) << wrong_types.body;
  EXPECT_EQ(server.post("/v2/models/demo/generate", R"({"text_input":"still here"})").status, 200);
  EXPECT_EQ(server.workers().value("workers_started", 0), 1);
}

}  // namespace
}  // namespace respawn::test
