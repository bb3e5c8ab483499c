// The admin half of the Api (see api.hpp): who may call the admin routes, and the routes
// themselves (worker status, live policy, recycle, fault injection).
#include "api.hpp"

#include <spdlog/spdlog.h>

#include "respawn/json_util.hpp"

namespace respawn {

using nlohmann::json;

namespace {

bool query_flag(std::string_view target, std::string_view name) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return false;
  for (auto rest = target.substr(q + 1); !rest.empty();) {
    const auto amp = rest.find('&');
    const auto pair = rest.substr(0, amp);
    if (pair == name || pair == std::string(name) + "=1" || pair == std::string(name) + "=true") {
      return true;
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return false;
}

}  // namespace

std::optional<HttpResponse> Api::admin_refusal(const HttpRequest& request,
                                               const RequestContext& context) const {
  if (!options_.admin_token.empty()) {
    if (request[http::field::authorization] == "Bearer " + options_.admin_token) {
      return std::nullopt;
    }
    auto res = json_response(http::status::unauthorized,
                             {{"error", "admin calls need 'Authorization: Bearer <token>'"}});
    res.set(http::field::www_authenticate, "Bearer");
    return res;
  }
  if (context.from_loopback) return std::nullopt;
  return json_response(http::status::forbidden,
                       {{"error",
                         "admin calls are only allowed from loopback (or set "
                         "--admin-token)"}});
}

void Api::handle_admin(const Route& route, const HttpRequest& request, Respond& respond) {
  auto& manager = scheduler_.manager();
  switch (route.id) {
    case RouteId::admin_workers: {
      auto status = manager.status();
      status["queue_depth"] = scheduler_.queued();
      return respond(json_response(http::status::ok, status));
    }
    case RouteId::admin_policy:
      if (request.method() == http::verb::patch) return respond(patch_policy(request));
      return respond(json_response(http::status::ok, to_json(manager.policy())));
    case RouteId::admin_recycle: {
      const bool now = query_flag(request.target(), "now");
      const auto pid = json_get<std::int64_t>(manager.status(), "pid", 0);
      if (pid == 0) {
        return respond(
            error_response(make_error(ErrorKind::unavailable, "no worker is running to recycle")));
      }
      manager.recycle(now);
      return respond(json_response(http::status::accepted,
                                   {{"recycling", now ? "now" : "graceful"}, {"pid", pid}}));
    }
    case RouteId::admin_fault:
      return respond(put_fault(request));
    default:
      break;
  }
  respond(error_response(make_error(ErrorKind::not_found, "no such admin route")));
}

HttpResponse Api::patch_policy(const HttpRequest& request) {
  auto body = parse_json_body(request);
  if (!body) return error_response(body.error());
  auto& manager = scheduler_.manager();
  auto updated = apply_json(manager.policy(), *body);
  if (!updated) return error_response(updated.error());
  manager.set_policy(*updated);
  spdlog::info("policy changed by PATCH /admin/policy: {}", body->dump());
  return json_response(http::status::ok, to_json(manager.policy()));
}

HttpResponse Api::put_fault(const HttpRequest& request) {
  if (!options_.enable_fault_injection) {
    return error_response(make_error(
        ErrorKind::not_found, "fault injection is off (start with --enable-fault-injection)"));
  }
  auto body = parse_json_body(request);
  if (!body) return error_response(body.error());
  const auto& start = json_field(*body, "start");
  if (!start.is_string() && !start.is_null()) {
    return error_response(make_error(ErrorKind::bad_input, "'start' must be a string or null"));
  }
  scheduler_.manager().set_start_fault(start.is_string() ? start.get<std::string>() : "");
  return json_response(http::status::ok, {{"start", scheduler_.manager().start_fault()}});
}

}  // namespace respawn
