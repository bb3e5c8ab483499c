#include "http/http_types.hpp"

#include <algorithm>

#include "respawn/json_util.hpp"

namespace respawn {

http::status http_status(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::bad_input:
      return http::status::bad_request;
    case ErrorKind::not_found:
      return http::status::not_found;
    case ErrorKind::too_large:
      return http::status::payload_too_large;
    case ErrorKind::unavailable:
      return http::status::service_unavailable;
    case ErrorKind::timeout:
      return http::status::gateway_timeout;
    case ErrorKind::worker_failed:
      return http::status::bad_gateway;
    case ErrorKind::cancelled:
      return static_cast<http::status>(499);
    case ErrorKind::internal:
      break;
  }
  return http::status::internal_server_error;
}

Result<nlohmann::json> parse_json_object(std::string_view text) {
  auto body = parse_json(text);
  if (body.is_discarded()) {
    return make_error(ErrorKind::bad_input,
                      "request body is not valid JSON (or nests deeper than " +
                          std::to_string(kMaxJsonDepth) + " levels)");
  }
  if (!body.is_object()) {
    return make_error(ErrorKind::bad_input, "request body must be a JSON object");
  }
  return body;
}

HttpResponse json_response(http::status status, const nlohmann::json& body) {
  HttpResponse res{status, 11};
  res.set(http::field::content_type, "application/json");
  // Invalid UTF-8 cannot get here (generated text is sanitized); replace rather than throw
  // if a bug ever lets some through.
  res.body() = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return res;
}

HttpResponse error_response(const Error& error) {
  auto res = json_response(http_status(error.kind), {{"error", error.message}});
  if (error.kind == ErrorKind::unavailable) {
    res.set(http::field::retry_after, std::to_string(std::max(1u, error.retry_after_s)));
  }
  if (error.worker_pid > 0) res.set("X-Respawn-Worker-Pid", std::to_string(error.worker_pid));
  return res;
}

}  // namespace respawn
