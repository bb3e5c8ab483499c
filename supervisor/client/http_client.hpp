#pragma once
// A small blocking HTTP/1.1 client for the programs that talk to a respawn server from outside
// (`respawn smoke`, the integration tests): one request on its own connection, with one
// deadline over connect, write and read (beast::tcp_stream's expiry: a blocking Asio read
// cannot be bounded with SO_RCVTIMEO). Network trouble is a reply with status 0 and a reason,
// never an exception. Each call has its own io_context and socket, so the functions are
// thread-safe; Endpoint and the structs are plain values.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace respawn::client {

// Where a server listens. `host` is a name or an address, IPv6 without brackets.
struct Endpoint {
  std::string host;
  std::string port;
  std::string host_header() const;  // HOST:PORT as the Host header and URLs spell it
  std::string url() const { return "http://" + host_header(); }
};

// "http://HOST[:PORT][/]" (HOST may be a bracketed IPv6 address; PORT 1-65535, 80 if absent);
// nullopt for anything else, including a path, user info or another scheme.
std::optional<Endpoint> parse_http_url(std::string_view url);

struct Request {
  std::string method = "GET";  // any token; sent as given
  std::string target = "/";
  // Sent as is; with a body, or a method other than GET and HEAD, Content-Type is
  // application/json (the admin writes require it).
  std::string body;
  std::string bearer_token;  // non-empty: Authorization: Bearer <token>
  // Set last, so a name here (any case) replaces the default of that name: Host (the endpoint's
  // HOST:PORT), Connection (close), Content-Type, Authorization, User-Agent (none).
  std::map<std::string, std::string> headers;
};

struct Reply {
  int status = 0;  // 0: no complete response; `error` says why
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  double latency_ms = 0;                       // from the start of the call to its end
  std::string error;  // "connect: ...", "read: ...", "timed out after 300 ms", ...
  // The value of a header (name in lower case), or "" when absent.
  std::string header(const std::string& lower_name) const;
};

// Resolves the endpoint, then connects, sends `request` and reads one response (body up to
// 256 MiB) within `timeout`. Resolution is not under the deadline: a numeric address needs no
// lookup.
Reply http_request(const Endpoint& endpoint, const Request& request,
                   std::chrono::milliseconds timeout);

// The same exchange with `bytes` sent exactly as given (a malformed request, say); the reply is
// whatever response the server sends back.
Reply send_raw(const Endpoint& endpoint, std::string_view bytes, std::chrono::milliseconds timeout);

}  // namespace respawn::client
