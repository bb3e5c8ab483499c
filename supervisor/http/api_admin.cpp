// The admin half of the Api (see api.hpp): who may call the admin routes, and the routes
// themselves (worker status, live policy, recycle, fault injection, quarantine).
#include "http/api.hpp"

#include <spdlog/spdlog.h>
#include <boost/beast/core/string.hpp>

#include "http/http_server.hpp"

#include "respawn/json_util.hpp"

namespace respawn {

using nlohmann::json;
namespace beast = boost::beast;

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

bool is_write(http::verb method) {
  return method != http::verb::get && method != http::verb::head;
}

// `Authorization: Bearer <token>`, with the scheme matched case-insensitively (RFC 7235) and
// the token compared in constant time.
bool bearer_matches(std::string_view header, const std::string& token) {
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size() ||
      !beast::iequals(header.substr(0, kScheme.size()), kScheme) || header[kScheme.size()] != ' ') {
    return false;
  }
  auto given = header.substr(kScheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  if (given.size() != token.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < token.size(); ++i) diff |= given[i] ^ token[i];
  return diff == 0;
}

// A Host header that names this machine: localhost (and *.localhost, RFC 6761) or a loopback
// address, with an optional port. A DNS-rebinding page reaches us under its own name instead.
bool is_loopback_host(std::string_view host) {
  if (host.empty()) return true;  // HTTP/1.0 without Host: not a browser
  std::string_view name = host;
  if (name.front() == '[') {
    const auto close = name.find(']');
    if (close == std::string_view::npos) return false;
    name = name.substr(1, close - 1);
  } else if (const auto colon = name.find(':'); colon != std::string_view::npos) {
    name = name.substr(0, colon);
  }
  if (beast::iequals(name, "localhost")) return true;
  constexpr std::string_view kLocalhostSuffix = ".localhost";
  if (name.size() > kLocalhostSuffix.size() &&
      beast::iequals(name.substr(name.size() - kLocalhostSuffix.size()), kLocalhostSuffix)) {
    return true;
  }
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(std::string(name), ec);
  return !ec && is_loopback_peer(address);
}

// A browser page of another origin may send simple cross-site requests (a form, a no-cors
// fetch) with the user's network position: refuse admin writes unless they are same-origin
// and carry a JSON body type, which a cross-site page cannot send without a CORS preflight
// (which we never grant).
// The event stream (GET /admin/events) is refused cross-site too: a foreign page could not
// read it, but it would hold one of the few stream slots.
std::optional<HttpResponse> cross_site_refusal(const HttpRequest& request, bool stream) {
  if (!is_write(request.method()) && !stream) return std::nullopt;
  const auto forbidden = [](const std::string& why) {
    return json_response(http::status::forbidden, {{"error", why}});
  };
  const auto site = request["Sec-Fetch-Site"];
  if (!site.empty() && !beast::iequals(site, "same-origin") && !beast::iequals(site, "none")) {
    return forbidden("cross-site admin writes are refused (Sec-Fetch-Site: " + std::string(site) +
                     ")");
  }
  auto origin = request[http::field::origin];
  if (!origin.empty()) {
    for (std::string_view scheme : {"http://", "https://"}) {
      if (origin.substr(0, scheme.size()) == scheme) origin.remove_prefix(scheme.size());
    }
    if (!beast::iequals(origin, request[http::field::host])) {
      return forbidden("cross-origin admin writes are refused (Origin: " +
                       std::string(request[http::field::origin]) + ")");
    }
  }
  if (!is_write(request.method())) return std::nullopt;
  const auto type = request[http::field::content_type];
  if (!beast::iequals(type.substr(0, type.find(';')), "application/json")) {
    return json_response(http::status::unsupported_media_type,
                         {{"error", "admin writes need 'Content-Type: application/json'"}});
  }
  return std::nullopt;
}

}  // namespace

std::optional<HttpResponse> Api::admin_refusal(const HttpRequest& request,
                                               const RequestContext& context) const {
  const bool stream =
      match_route(request.method_string(), request.target()).id == RouteId::admin_events;
  if (auto refused = cross_site_refusal(request, stream)) return refused;
  if (!options_.admin_token.empty()) {
    if (bearer_matches(request[http::field::authorization], options_.admin_token)) {
      return std::nullopt;
    }
    auto res = json_response(http::status::unauthorized,
                             {{"error", "admin calls need 'Authorization: Bearer <token>'"}});
    res.set(http::field::www_authenticate, "Bearer");
    return res;
  }
  if (!context.from_loopback) {
    return json_response(http::status::forbidden,
                         {{"error",
                           "admin calls are only allowed from loopback (or set "
                           "--admin-token)"}});
  }
  if (!is_loopback_host(request[http::field::host])) {
    return json_response(http::status::forbidden,
                         {{"error",
                           "admin calls without --admin-token need a loopback Host (localhost, "
                           "127.0.0.1 or [::1]), not '" +
                               std::string(request[http::field::host]) + "'"}});
  }
  return std::nullopt;
}

void Api::handle_admin(const Route& route, const HttpRequest& request, const json* body,
                       Respond& respond) {
  auto& manager = scheduler_.manager();
  switch (route.id) {
    case RouteId::admin_workers:
      return respond(json_response(http::status::ok, workers_body()));
    case RouteId::admin_policy:
      if (request.method() == http::verb::patch) return respond(patch_policy(*body));
      return respond(json_response(http::status::ok, to_json(manager.policy())));
    case RouteId::admin_recycle: {
      const bool now = query_flag(request.target(), "now");
      const pid_t pid = manager.current_pid();
      if (pid == 0) {
        return respond(
            error_response(make_error(ErrorKind::unavailable, "no worker is running to recycle")));
      }
      manager.recycle(now);
      return respond(json_response(http::status::accepted,
                                   {{"recycling", now ? "now" : "graceful"}, {"pid", pid}}));
    }
    case RouteId::admin_reload:
      return reload(std::move(respond));
    case RouteId::admin_fault:
      return respond(put_fault(*body));
    case RouteId::admin_quarantine: {
      if (request.method() == http::verb::get) {
        return respond(
            json_response(http::status::ok, {{"quarantine", manager.quarantine_list()}}));
      }
      const auto cleared = manager.clear_quarantine(route.item);
      if (!route.item.empty() && cleared == 0) {
        return respond(error_response(
            make_error(ErrorKind::not_found, "no quarantine entry '" + route.item + "'")));
      }
      spdlog::info("quarantine: {} entr{} cleared by the operator", cleared,
                   cleared == 1 ? "y" : "ies");
      return respond(json_response(http::status::ok, {{"cleared", cleared}}));
    }
    default:
      break;
  }
  respond(error_response(make_error(ErrorKind::not_found, "no such admin route")));
}

json Api::workers_body() const {
  auto status = scheduler_.manager().status();
  status["queue_depth"] = scheduler_.queued();
  return status;
}

json Api::events_snapshot() {
  auto& manager = scheduler_.manager();
  return {{"workers", workers_body()},
          {"policy", to_json(manager.policy())},
          {"quarantine", {{"quarantine", manager.quarantine_list()}}}};
}

// The tokenizer files, when the server has any (--tokenizer, or those the model file carried at
// start-up), are read again first, on the helper thread: if they do not load, nothing changes.
// The new tokenizer serves once the model has loaded again too, so that both change together.
void Api::reload(Respond respond) {
  if (options_.tokenizer.empty()) return reload_model(nullptr, std::move(respond));
  boost::asio::post(parse_pool_, [this, respond = std::move(respond)]() mutable {
    auto text = std::make_shared<Result<std::shared_ptr<const TextModel>>>(
        make_error(ErrorKind::internal, "unexpected exception"));
    try {
      *text = TextModel::load(options_.tokenizer);
    } catch (const std::exception& e) {
      *text = make_error(ErrorKind::internal, e.what());
    }
    boost::asio::post(scheduler_.io(), [this, text, respond = std::move(respond)]() mutable {
      run_guarded(metrics_, respond, [&] {
        if (!*text) {
          return respond(error_response(make_error(
              ErrorKind::internal, "the tokenizer did not load again (" + text->error().message +
                                       "); the running one still serves")));
        }
        reload_model(std::move(**text), std::move(respond));
      });
    });
  });
}

// Answered once the model has loaded again (or failed to): the worker then rolls over.
void Api::reload_model(std::shared_ptr<const TextModel> text, Respond respond) {
  auto& manager = scheduler_.manager();
  manager.reload([this, text = std::move(text), respond = std::move(respond),
                  pid = manager.current_pid()](Result<json> result) {
    if (!result) return respond(error_response(result.error()));
    if (text) {
      text_ = text;
      spdlog::info("reload: the tokenizer files of {} were read again", options_.tokenizer);
    }
    respond(json_response(http::status::ok,
                          {{"reloaded", true}, {"recycling", pid}, {"fork_server", *result}}));
  });
}

HttpResponse Api::patch_policy(const json& body) {
  auto& manager = scheduler_.manager();
  auto updated = apply_json(manager.policy(), body);
  if (!updated) return error_response(updated.error());
  manager.set_policy(*updated);
  spdlog::info("policy changed by PATCH /admin/policy: {}", body.dump());
  const auto policy = to_json(manager.policy());
  events_.policy_changed(policy);
  return json_response(http::status::ok, policy);
}

HttpResponse Api::put_fault(const json& body) {
  if (!options_.enable_fault_injection) {
    return error_response(make_error(
        ErrorKind::not_found, "fault injection is off (start with --enable-fault-injection)"));
  }
  const auto& start = json_field(body, "start");
  if (!start.is_string() && !start.is_null()) {
    return error_response(make_error(ErrorKind::bad_input, "'start' must be a string or null"));
  }
  scheduler_.manager().set_start_fault(start.is_string() ? start.get<std::string>() : "");
  return json_response(http::status::ok, {{"start", scheduler_.manager().start_fault()}});
}

}  // namespace respawn
