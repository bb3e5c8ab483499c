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

// What a handler may know about the connection, without touching it.
struct RequestContext {
  bool from_loopback = false;
};

http::status http_status(ErrorKind kind);
HttpResponse json_response(http::status status, const nlohmann::json& body);
// {"error": message} with the kind's status; 503s carry Retry-After.
HttpResponse error_response(const Error& error);

}  // namespace respawn
