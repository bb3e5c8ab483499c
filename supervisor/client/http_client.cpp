#include "client/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cstdint>
#include <vector>

namespace respawn::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::uint64_t kBodyLimit = std::uint64_t{256} << 20;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

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
  if (ec == beast::error::timeout) {
    return "timed out after " + std::to_string(timeout.count()) + " ms";
  }
  return std::string(step) + ": " + ec.message();
}

// A numeric address needs no resolver (which, with AI_ADDRCONFIG, may even refuse ::1 on a
// host whose only IPv6 address is the loopback one).
std::vector<tcp::endpoint> resolve(asio::io_context& io, const Endpoint& ep,
                                   beast::error_code& ec) {
  std::vector<tcp::endpoint> out;
  const auto address = asio::ip::make_address(ep.host, ec);
  if (!ec) {
    unsigned long port = 0;
    try {
      port = std::stoul(ep.port);
    } catch (const std::exception&) {
      port = 0;
    }
    if (port == 0 || port > 65535) {
      ec = asio::error::invalid_argument;
      return out;
    }
    out.emplace_back(address, static_cast<unsigned short>(port));
    return out;
  }
  ec = {};
  const auto results = tcp::resolver(io).resolve(ep.host, ep.port, ec);
  if (!ec) {
    for (const auto& entry : results) out.push_back(entry.endpoint());
  }
  return out;
}

// Connects, lets `write` send the request and reads one response, all before `timeout`.
template <typename Write>
Reply exchange(const Endpoint& ep, milliseconds timeout, Write write) {
  Reply reply;
  const auto start = Clock::now();
  asio::io_context io;
  beast::error_code ec;
  const auto endpoints = resolve(io, ep, ec);
  if (ec) {
    reply.error = "resolve " + ep.host + ": " + ec.message();
  } else {
    beast::tcp_stream stream(io);
    stream.expires_after(timeout);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kBodyLimit);
    if ((ec = run_op(io, [&](auto h) { stream.async_connect(endpoints, h); }))) {
      reply.error = describe("connect", ec, timeout);
    } else if ((ec = run_op(io, [&](auto h) { write(stream, h); }))) {
      reply.error = describe("write", ec, timeout);
    } else if ((ec = run_op(io, [&](auto h) { http::async_read(stream, buffer, parser, h); }))) {
      reply.error = describe("read", ec, timeout);
    } else {
      auto& res = parser.get();
      reply.status = static_cast<int>(res.result_int());
      for (const auto& field : res) {
        reply.headers[lower(std::string(field.name_string()))] = std::string(field.value());
      }
      reply.body = std::move(res.body());
    }
  }
  reply.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return reply;
}

}  // namespace

std::string Endpoint::host_header() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + port;
}

std::optional<Endpoint> parse_http_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.substr(0, scheme.size()) != scheme) return std::nullopt;
  std::string rest(url.substr(scheme.size()));
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  Endpoint ep;
  std::size_t port_at = std::string::npos;
  if (!rest.empty() && rest[0] == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) return std::nullopt;
    ep.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return std::nullopt;
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
      ep.host.find_first_of("/?#@ ") != std::string::npos) {
    return std::nullopt;
  }
  return ep;
}

std::string Reply::header(const std::string& lower_name) const {
  const auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

Reply http_request(const Endpoint& endpoint, const Request& request, milliseconds timeout) {
  http::request<http::string_body> req;
  req.method_string(request.method);
  req.target(request.target);
  req.version(11);
  req.set(http::field::host, endpoint.host_header());
  req.set(http::field::connection, "close");
  if (!request.bearer_token.empty()) {
    req.set(http::field::authorization, "Bearer " + request.bearer_token);
  }
  if (!request.body.empty() || (request.method != "GET" && request.method != "HEAD")) {
    req.set(http::field::content_type, "application/json");
  }
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.body() = request.body;
  req.prepare_payload();
  return exchange(endpoint, timeout, [&](beast::tcp_stream& stream, auto done) {
    http::async_write(stream, req, done);
  });
}

Reply send_raw(const Endpoint& endpoint, std::string_view bytes, milliseconds timeout) {
  return exchange(endpoint, timeout, [&](beast::tcp_stream& stream, auto done) {
    asio::async_write(stream, asio::buffer(bytes.data(), bytes.size()), done);
  });
}

}  // namespace respawn::client
