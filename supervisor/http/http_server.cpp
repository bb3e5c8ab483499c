#include "http/http_server.hpp"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cstdio>
#include <optional>

namespace respawn {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

// The StreamSink a handler gets: forwards to its session while the session lives.
class SessionStream : public StreamSink {
 public:
  explicit SessionStream(std::weak_ptr<HttpSession> session) : session_(std::move(session)) {}
  void start(http::status status, const std::string& content_type) override {
    if (auto s = session_.lock()) s->stream_start(status, content_type);
  }
  void write(std::string data) override {
    if (auto s = session_.lock()) s->stream_write(std::move(data));
  }
  void finish() override {
    if (auto s = session_.lock()) s->stream_finish();
  }
  bool closed() const override {
    const auto s = session_.lock();
    return !s || !s->stream_.socket().is_open();
  }

 private:
  std::weak_ptr<HttpSession> session_;
};

namespace {

constexpr std::size_t kHeaderLimit = 16 * 1024;
constexpr std::size_t kDrainLimit = 4u << 20;
// A Content-Length body at least this large skips Beast's parser (see read_body_direct).
constexpr std::size_t kDirectBodyBytes = 64 * 1024;

// What the headers alone make us refuse. A transfer coding other than chunked (gzip, say) is
// one we cannot decode: 501 (RFC 9112 6.1). HTTP/1.1 requires Host (RFC 9112 3.2).
std::optional<HttpResponse> header_refusal(const HttpRequest& request) {
  const auto te = request[http::field::transfer_encoding];
  if (!te.empty() && !beast::iequals(te, "chunked")) {
    return json_response(http::status::not_implemented,
                         {{"error", "unsupported Transfer-Encoding '" + std::string(te) +
                                        "'; only chunked is supported"}});
  }
  if (request.version() >= 11 && request.find(http::field::host) == request.end()) {
    return error_response(
        make_error(ErrorKind::bad_input, "an HTTP/1.1 request needs a Host header"));
  }
  const auto expect = request[http::field::expect];
  if (!expect.empty() && !beast::iequals(expect, "100-continue")) {
    return json_response(http::status::expectation_failed,
                         {{"error", "unsupported Expect '" + std::string(expect) + "'"}});
  }
  return std::nullopt;
}

}  // namespace

bool is_loopback_peer(const asio::ip::address& a) {
  if (a.is_loopback()) return true;
  return a.is_v6() && a.to_v6().is_v4_mapped() &&
         asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).is_loopback();
}

HttpSession::HttpSession(tcp::socket socket, Api& api, const ServeOptions& options)
    : stream_(std::move(socket)), api_(api), options_(options) {
  beast::error_code ec;
  const auto peer = stream_.socket().remote_endpoint(ec);
  context_.from_loopback = !ec && is_loopback_peer(peer.address());
  stream_.socket().set_option(tcp::no_delay(true), ec);
}

void HttpSession::run() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_request(); });
}

// Two deadlines: the headers (which also bounds an idle keep-alive connection) and then the
// body, so a slow client can hold a connection only so long at each stage.
void HttpSession::read_request() {
  parser_.emplace();
  parser_->body_limit(options_.max_body_bytes);
  parser_->header_limit(kHeaderLimit);
  stream_.expires_after(std::chrono::milliseconds(options_.header_timeout_ms));
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
}

void HttpSession::on_header(beast::error_code ec) {
  // A Transfer-Encoding after a Content-Length, or a second chunked, stops Beast mid-header:
  // bad_transfer_encoding is a 400 and the connection closes (the rest of the headers is still
  // unread: reading on would take it for the body and let it smuggle a request).
  if (ec) return on_read(ec);
  if (auto refused = header_refusal(parser_->get())) return reject(std::move(*refused));
  if (parser_->is_done()) return on_read({});
  if (parser_->get().version() < 11 ||
      !beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
    return read_body();  // HTTP/1.0 has no interim responses (RFC 9110 10.1.1)
  }
  // The client waits for this before it sends the body (curl: 1 s for large bodies).
  static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  asio::async_write(stream_, asio::buffer(kContinue),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (ec) return self->stream_.close();
                      self->read_body();
                    });
}

void HttpSession::read_body() {
  stream_.expires_after(std::chrono::milliseconds(options_.read_timeout_ms));
  // The headers are all in (on_header stops at any error), and the length within the body limit.
  const auto length = parser_->content_length();
  if (length && *length >= kDirectBodyBytes) {
    return read_body_direct(static_cast<std::size_t>(*length));
  }
  http::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
}

// Beast's parser reads a body into buffer_ 64 KiB at a time and then copies it into the
// request's string. A large body with a Content-Length (an image tensor) goes straight from the
// socket into that string instead, in reads as large as the socket has bytes ready.
void HttpSession::read_body_direct(std::size_t length) {
  direct_body_.clear();
  direct_body_.reserve(length);  // memory is committed as it is written (read_more_body)
  const auto have = std::min(buffer_.size(), length);  // read along with the headers
  direct_body_.resize(have);
  asio::buffer_copy(asio::buffer(direct_body_), buffer_.data(), have);
  buffer_.consume(have);
  read_more_body(length, have);
}

// direct_body_ holds `received` bytes of the body and room (zero-filled) for more after them.
void HttpSession::read_more_body(std::size_t length, std::size_t received) {
  if (received == length) {
    stream_.expires_never();
    auto request = parser_->release();
    request.body() = std::move(direct_body_);
    return dispatch(std::move(request));
  }
  // The room doubles (zero-filled, so committed, once) only when the bytes have filled it: a
  // client that announces 8 MiB and sends a byte holds 64 KiB of ours, not 8 MiB.
  if (received == direct_body_.size()) {
    direct_body_.resize(std::min(length, std::max(2 * received, kDirectBodyBytes)));
  }
  stream_.async_read_some(
      asio::buffer(direct_body_.data() + received, direct_body_.size() - received),
      [self = shared_from_this(), received, length](beast::error_code ec, std::size_t n) {
        if (ec == asio::error::eof) ec = http::error::partial_message;
        if (ec) return self->on_read(ec);
        self->read_more_body(length, received + n);
      });
}

void HttpSession::on_read(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    return stream_.close();
  }
  if (ec == http::error::body_limit) {
    return reject(
        make_error(ErrorKind::too_large,
                   "request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes"));
  }
  if (ec == http::error::header_limit) {
    return reject(make_error(ErrorKind::too_large, "request headers are too large"));
  }
  if (ec)
    return reject(make_error(ErrorKind::bad_input, "malformed HTTP request: " + ec.message()));

  stream_.expires_never();
  dispatch(parser_->release());
}

void HttpSession::dispatch(HttpRequest request) {
  version_ = request.version();
  keep_alive_ = request.keep_alive();
  context_.open_stream = [weak = weak_from_this()]() -> std::shared_ptr<StreamSink> {
    return std::make_shared<SessionStream>(weak);
  };
  context_.on_disconnect = [weak = weak_from_this()](std::function<void()> callback) {
    if (auto self = weak.lock()) self->watch_disconnect(std::move(callback));
  };
  api_.handle(std::move(request), context_,
              [self = shared_from_this()](HttpResponse res) { self->send(std::move(res)); });
}

// HTTP/1.1 streams use chunked encoding. HTTP/1.0 has none (RFC 9112 7.1 forbids sending it
// to a 1.0 client): the body is the raw bytes, and closing the connection ends it.
void HttpSession::stream_start(http::status status, const std::string& content_type) {
  chunked_ = version_ >= 11;
  if (!chunked_) keep_alive_ = false;
  std::string head = (chunked_ ? "HTTP/1.1 " : "HTTP/1.0 ") +
                     std::to_string(static_cast<unsigned>(status)) + " " +
                     std::string(http::obsolete_reason(status)) + "\r\nServer: respawn\r\n" +
                     "Content-Type: " + content_type + "\r\nCache-Control: no-cache\r\n";
  if (chunked_) head += "Transfer-Encoding: chunked\r\n";
  if (!keep_alive_) head += "Connection: close\r\n";
  outbox_.push_back(head + "\r\n");
  if (outbox_.size() == 1) write_outbox();
}

void HttpSession::stream_write(std::string data) {
  if (data.empty()) return;  // an empty chunk would end the body
  if (chunked_) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    data = size + std::move(data) + "\r\n";
  }
  outbox_.push_back(std::move(data));
  if (outbox_.size() == 1) write_outbox();
}

void HttpSession::stream_finish() {
  stream_finished_ = true;
  outbox_.push_back(chunked_ ? "0\r\n\r\n" : "");
  if (outbox_.size() == 1) write_outbox();
}

void HttpSession::write_outbox() {
  stream_.expires_after(std::chrono::milliseconds(options_.read_timeout_ms));
  asio::async_write(stream_, asio::buffer(outbox_.front()),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (ec) {
                        self->outbox_.clear();
                        return self->stream_.close();
                      }
                      self->outbox_.pop_front();
                      if (!self->outbox_.empty()) return self->write_outbox();
                      if (!self->stream_finished_) return self->stream_.expires_never();
                      self->stream_finished_ = false;
                      self->on_write({});
                    });
}

void HttpSession::reject(const Error& error) {
  reject(error_response(error));
}

void HttpSession::reject(HttpResponse response) {
  keep_alive_ = false;
  send(std::move(response));
}

void HttpSession::send(HttpResponse response) {
  response.version(version_);
  response.keep_alive(keep_alive_);
  response.set(http::field::server, "respawn");
  response.prepare_payload();
  response_ = std::make_shared<HttpResponse>(std::move(response));
  stream_.expires_after(std::chrono::milliseconds(options_.read_timeout_ms));
  http::async_write(
      stream_, *response_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
}

void HttpSession::on_write(beast::error_code ec) {
  on_disconnect_ = nullptr;  // answered: nothing left to cancel
  if (ec) return stream_.close();
  response_.reset();
  if (!keep_alive_) return after_watch([self = shared_from_this()] { self->drain_and_close(); });
  after_watch([self = shared_from_this()] { self->read_request(); });
}

void HttpSession::watch_disconnect(std::function<void()> on_disconnect) {
  on_disconnect_ = std::move(on_disconnect);
  if (watching_) return;
  watching_ = true;
  // The watch has no deadline: a stream may stay open for good (GET /admin/events). A write
  // started before (a stream's head) armed the read timer too, which would otherwise cut the
  // connection read_timeout_ms later. (A pending write keeps its own timer.)
  stream_.expires_never();
  stream_.async_read_some(
      buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
        self->watching_ = false;
        if (!ec) {
          self->buffer_.commit(n);  // a pipelined request: kept, and no longer watching
        } else if (ec != asio::error::operation_aborted) {
          if (auto cancel = std::exchange(self->on_disconnect_, nullptr)) cancel();
        }
        if (auto next = std::exchange(self->after_watch_, nullptr)) next();
      });
}

void HttpSession::after_watch(std::function<void()> next) {
  if (!watching_) return next();
  // Stop the watch; its handler runs `next`.
  after_watch_ = std::move(next);
  beast::error_code ignored;
  stream_.socket().cancel(ignored);
}

// Closing a socket with unread bytes makes the kernel send RST, which can destroy the answer
// we just wrote (a 413 for a body still on its way). So: half-close, swallow what the client
// still sends (bounded in bytes and time), then close.
void HttpSession::drain_and_close() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(std::chrono::seconds(2));
  auto scratch = std::make_shared<std::array<char, 16384>>();
  auto drained = std::make_shared<std::size_t>(0);
  auto step = std::make_shared<std::function<void(beast::error_code, std::size_t)>>();
  *step = [self = shared_from_this(), scratch, drained, step](beast::error_code ec, std::size_t n) {
    *drained += n;
    if (ec || *drained > kDrainLimit) {
      self->stream_.close();
      *step = nullptr;  // break the self-reference cycle
      return;
    }
    self->stream_.async_read_some(asio::buffer(*scratch), *step);
  };
  (*step)({}, 0);
}

HttpServer::HttpServer(asio::io_context& io, Api& api, const ServeOptions& options)
    : io_(io), acceptor_(io), retry_timer_(io), api_(api), options_(options) {}

Result<tcp::endpoint> HttpServer::listen() {
  beast::error_code ec;
  tcp::resolver resolver(io_);
  const auto results =
      resolver.resolve(options_.host, std::to_string(options_.port),
                       tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return make_error(ErrorKind::bad_input,
                      "cannot resolve --host " + options_.host + ": " + ec.message());
  }
  const tcp::endpoint endpoint = *results.begin();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return make_error(ErrorKind::unavailable, "cannot listen on " + options_.host + ":" +
                                                  std::to_string(options_.port) + ": " +
                                                  ec.message());
  }
  const auto bound = acceptor_.local_endpoint(ec);
  accept();
  return bound;
}

void HttpServer::accept() {
  acceptor_.async_accept(
      io_, [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
        if (ec) return self->on_accept_error(ec);
        self->backoff_ = std::chrono::milliseconds(0);
        std::make_shared<HttpSession>(std::move(socket), self->api_, self->options_)->run();
        self->accept();
      });
}

void HttpServer::on_accept_error(const boost::system::error_code& ec) {
  using std::chrono::milliseconds;
  constexpr milliseconds kFirst{10}, kMax{1000};
  constexpr auto kReportEvery = std::chrono::seconds(10);
  backoff_ = backoff_.count() == 0 ? kFirst : std::min(backoff_ * 2, kMax);
  const auto now = std::chrono::steady_clock::now();
  if (now - last_report_ >= kReportEvery) {
    spdlog::warn("accept failed: {} ({} more since the last report); retrying every {} ms at most",
                 ec.message(), unreported_failures_, backoff_.count());
    last_report_ = now;
    unreported_failures_ = 0;
  } else {
    ++unreported_failures_;
  }
  retry_timer_.expires_after(backoff_);
  retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& wait_ec) {
    if (!wait_ec && self->acceptor_.is_open()) self->accept();
  });
}

void HttpServer::stop() {
  beast::error_code ignored;
  retry_timer_.cancel();
  acceptor_.close(ignored);
}

}  // namespace respawn
