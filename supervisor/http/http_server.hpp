#pragma once
// The HTTP/1.1 front end: an acceptor and one session per connection. A session reads one
// request at a time (with a body limit and a read timeout), hands it to the Api, writes the
// answer and, with keep-alive, reads the next. Sessions and the server are owned by
// shared_ptrs and live on the I/O thread; the Api and options must outlive them.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <deque>
#include <memory>
#include <optional>

#include "http/api.hpp"

namespace respawn {

// Whether a peer counts as local for the admin API (127/8, ::1, and v4-mapped 127/8).
bool is_loopback_peer(const boost::asio::ip::address& address);

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  // Its callbacks capture `this`: never copied or moved (which the deleted copy also forbids).
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;
  HttpSession(boost::asio::ip::tcp::socket socket, Api& api, const ServeOptions& options);
  void run();

 private:
  void read_request();
  // The headers are in: refuse what we do not serve (RFC 9112), answer Expect: 100-continue,
  // then read the body.
  void on_header(boost::beast::error_code ec);
  void read_body();
  void read_body_direct(std::size_t length);
  void read_more_body(std::size_t length, std::size_t received);
  void on_read(boost::beast::error_code ec);
  void dispatch(HttpRequest request);  // to the Api
  void reject(const Error& error);     // answers, then closes: the stream can't be trusted
  void reject(HttpResponse response);
  void send(HttpResponse response);
  void on_write(boost::beast::error_code ec);
  void drain_and_close();
  // Streaming (see StreamSink): bytes go through an ordered outbox of raw writes.
  friend class SessionStream;
  void stream_start(http::status status, const std::string& content_type);
  void stream_write(std::string data);
  void stream_finish();
  void write_outbox();
  // While a request is being answered, a read that sees EOF means the client left; bytes it
  // reads instead (a pipelined request) stay in buffer_ for the parser.
  void watch_disconnect(std::function<void()> on_disconnect);
  // Runs `next` (which reads) once no watch read is pending: two reads may not overlap.
  void after_watch(std::function<void()> next);

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string direct_body_;  // read_body_direct's target
  std::shared_ptr<HttpResponse> response_;
  Api& api_;
  const ServeOptions& options_;
  RequestContext context_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  std::deque<std::string> outbox_;
  bool stream_finished_ = false;
  bool chunked_ = true;  // the stream's body is chunked (HTTP/1.1)
  std::function<void()> on_disconnect_;
  bool watching_ = false;
  std::function<void()> after_watch_;
};

class HttpServer : public std::enable_shared_from_this<HttpServer> {
 public:
  // Its callbacks capture `this`: never copied or moved (which the deleted copy also forbids).
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  HttpServer(boost::asio::io_context& io, Api& api, const ServeOptions& options);
  // Binds and starts accepting; returns the bound endpoint (the real port when port is 0).
  Result<boost::asio::ip::tcp::endpoint> listen();
  void stop();

 private:
  void accept();
  // Out of descriptors (or memory), accept fails until some are freed: retrying at once would
  // spin. Back off, keep serving the connections that exist, and log once per interval.
  void on_accept_error(const boost::system::error_code& ec);

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point last_report_{};
  std::uint64_t unreported_failures_ = 0;
  Api& api_;
  const ServeOptions& options_;
};

}  // namespace respawn
