#pragma once
// The HTTP types handlers speak, and the one mapping from error kinds to status codes.
// Header-only helpers; thread-safe.
#include <boost/beast/http.hpp>
#include <functional>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"

namespace respawn {

namespace http = boost::beast::http;
using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;
using Respond = std::function<void(HttpResponse)>;

// A response whose body is written piece by piece (Server-Sent Events), with chunked transfer
// encoding. start() once, then write() any number of times, then finish(). Writes after the
// client is gone are dropped. Used on the I/O thread only.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual void start(http::status status, const std::string& content_type) = 0;
  virtual void write(std::string data) = 0;
  virtual void finish() = 0;
  // True once the client is gone (its connection closed): nothing written arrives.
  virtual bool closed() const { return false; }
};

// What a handler may know about the connection, without touching it.
struct RequestContext {
  bool from_loopback = false;
  // Turns this request's answer into a stream; call instead of answering with `respond`.
  std::function<std::shared_ptr<StreamSink>()> open_stream;
  // Registers what to do if the client goes away before it has its answer.
  std::function<void(std::function<void()>)> on_disconnect;
};

http::status http_status(ErrorKind kind);
HttpResponse json_response(http::status status, const nlohmann::json& body);
// A request body (or its JSON part) as a JSON object, or a bad_input error that says what is
// wrong (invalid JSON, nesting deeper than respawn's limit, or not an object).
Result<nlohmann::json> parse_json_object(std::string_view text);

// {"error": message} with the kind's status; 503s carry Retry-After.
HttpResponse error_response(const Error& error);

}  // namespace respawn
