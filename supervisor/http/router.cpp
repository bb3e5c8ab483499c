#include "http/router.hpp"

#include <charconv>
#include <optional>
#include <string>
#include <vector>

namespace respawn {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    const auto slash = path.find('/');
    const auto part = path.substr(0, slash);
    if (!part.empty()) parts.push_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

Route with_method(RouteId id, std::string_view want, std::string_view method,
                  std::string model = {}, std::string version = {}) {
  if (method != want) {
    return Route{
        RouteId::method_not_allowed, std::move(model), std::move(version), std::string(want), {}};
  }
  return Route{id, std::move(model), std::move(version), {}, {}};
}

// /v2/models/{m}[/versions/{v}][/action]
Route match_model_route(std::string_view method, const std::vector<std::string_view>& p) {
  std::string model(p[2]);
  std::string version;
  std::size_t next = 3;
  if (p.size() >= 5 && p[3] == "versions") {
    version = std::string(p[4]);
    next = 5;
  }
  const auto route = [&](RouteId id, std::string_view want) {
    return with_method(id, want, method, model, version);
  };
  if (p.size() == next) return route(RouteId::model_metadata, "GET");
  if (p.size() != next + 1) return {};
  const auto action = p[next];
  if (action == "ready") return route(RouteId::model_ready, "GET");
  if (action == "config") return route(RouteId::model_config, "GET");
  if (action == "stats") return route(RouteId::model_stats, "GET");
  if (action == "infer") return route(RouteId::infer, "POST");
  if (action == "generate") return route(RouteId::generate, "POST");
  if (action == "generate_stream") return route(RouteId::generate_stream, "POST");
  return {};
}

}  // namespace

std::string_view Route::label() const {
  return route_label(id);
}

std::string_view route_label(RouteId id) {
  switch (id) {
    case RouteId::server_metadata:
      return "server_metadata";
    case RouteId::health_live:
      return "health_live";
    case RouteId::health_ready:
      return "health_ready";
    case RouteId::model_metadata:
      return "model_metadata";
    case RouteId::model_config:
      return "model_config";
    case RouteId::model_ready:
      return "model_ready";
    case RouteId::model_stats:
      return "model_stats";
    case RouteId::infer:
      return "infer";
    case RouteId::generate:
      return "generate";
    case RouteId::generate_stream:
      return "generate_stream";
    case RouteId::openai_completions:
      return "openai_completions";
    case RouteId::openai_chat:
      return "openai_chat";
    case RouteId::openai_models:
      return "openai_models";
    case RouteId::metrics:
      return "metrics";
    case RouteId::tokenize:
      return "tokenize";
    case RouteId::detokenize:
      return "detokenize";
    case RouteId::admin_workers:
      return "admin_workers";
    case RouteId::admin_policy:
      return "admin_policy";
    case RouteId::admin_recycle:
      return "admin_recycle";
    case RouteId::admin_reload:
      return "admin_reload";
    case RouteId::admin_fault:
      return "admin_fault";
    case RouteId::admin_quarantine:
      return "admin_quarantine";
    case RouteId::admin_events:
      return "admin_events";
    case RouteId::status_page:
      return "status_page";
    case RouteId::shm_status:
      return "shm_status";
    case RouteId::shm_register:
      return "shm_register";
    case RouteId::shm_unregister:
      return "shm_unregister";
    case RouteId::cuda_shm:
      return "cuda_shm";
    case RouteId::method_not_allowed:
      return "method_not_allowed";
    case RouteId::not_found:
      break;
  }
  return "not_found";
}

// A path segment with its %XX escapes decoded (tritonclient quotes region names); nullopt for
// a malformed escape.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (s.size() - i < 3) return std::nullopt;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, value, 16);
    if (ec != std::errc() || end != s.data() + i + 3) return std::nullopt;
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

// /v2/{system,cuda}sharedmemory[/region/{r}]/status (GET), .../register (POST, with a
// region), [/region/{r}]/unregister (POST).
Route match_shared_memory_route(std::string_view method, const std::vector<std::string_view>& p) {
  std::string region;
  std::string_view action;
  if (p.size() == 3) {
    action = p[2];
  } else if (p.size() == 5 && p[2] == "region") {
    auto decoded = percent_decode(p[3]);
    if (!decoded || decoded->empty()) return {};
    region = std::move(*decoded);
    action = p[4];
  } else {
    return {};
  }
  Route route;
  if (action == "status") {
    route = with_method(RouteId::shm_status, "GET", method);
  } else if (action == "register" && !region.empty()) {
    route = with_method(RouteId::shm_register, "POST", method);
  } else if (action == "unregister") {
    route = with_method(RouteId::shm_unregister, "POST", method);
  } else {
    return {};
  }
  if (p[1] == "cudasharedmemory" && route.id != RouteId::method_not_allowed) {
    route.id = RouteId::cuda_shm;
  }
  route.item = std::move(region);
  return route;
}

Route match_route(std::string_view method, std::string_view target) {
  const auto path = target.substr(0, target.find_first_of("?#"));
  const auto p = split_path(path);
  if (p.empty()) {
    if (path != "/") return {};
    return with_method(RouteId::status_page, "GET", method);
  }
  if (p[0] == "status" && p.size() == 1) return with_method(RouteId::status_page, "GET", method);
  if (p[0] == "metrics" && p.size() == 1) return with_method(RouteId::metrics, "GET", method);
  if (p[0] == "tokenize" && p.size() == 1) return with_method(RouteId::tokenize, "POST", method);
  if (p[0] == "detokenize" && p.size() == 1) {
    return with_method(RouteId::detokenize, "POST", method);
  }
  if (p[0] == "admin" && p.size() == 3 && p[1] == "quarantine") {
    auto route = with_method(RouteId::admin_quarantine, "DELETE", method);
    route.item = std::string(p[2]);
    return route;
  }
  if (p[0] == "admin" && p.size() == 2) {
    if (p[1] == "quarantine") {
      if (method == "GET" || method == "DELETE")
        return Route{RouteId::admin_quarantine, {}, {}, {}, {}};
      return Route{RouteId::method_not_allowed, {}, {}, "GET, DELETE", {}};
    }
    if (p[1] == "workers") return with_method(RouteId::admin_workers, "GET", method);
    if (p[1] == "events") return with_method(RouteId::admin_events, "GET", method);
    if (p[1] == "policy") {
      if (method == "GET" || method == "PATCH") return Route{RouteId::admin_policy, {}, {}, {}, {}};
      return Route{RouteId::method_not_allowed, {}, {}, "GET, PATCH", {}};
    }
    if (p[1] == "recycle") return with_method(RouteId::admin_recycle, "POST", method);
    if (p[1] == "reload") return with_method(RouteId::admin_reload, "POST", method);
    if (p[1] == "fault") return with_method(RouteId::admin_fault, "PUT", method);
  }
  if (p[0] == "v1") {
    if (p.size() == 2 && p[1] == "completions") {
      return with_method(RouteId::openai_completions, "POST", method);
    }
    if (p.size() == 3 && p[1] == "chat" && p[2] == "completions") {
      return with_method(RouteId::openai_chat, "POST", method);
    }
    if (p.size() == 2 && p[1] == "models")
      return with_method(RouteId::openai_models, "GET", method);
    return {};
  }
  if (p[0] != "v2") return {};
  if (p.size() == 1) return with_method(RouteId::server_metadata, "GET", method);
  if (p[1] == "health" && p.size() == 3) {
    if (p[2] == "live") return with_method(RouteId::health_live, "GET", method);
    if (p[2] == "ready") return with_method(RouteId::health_ready, "GET", method);
    return {};
  }
  if (p[1] == "systemsharedmemory" || p[1] == "cudasharedmemory") {
    return match_shared_memory_route(method, p);
  }
  if (p[1] == "models" && p.size() == 3 && p[2] == "stats") {
    return with_method(RouteId::model_stats, "GET", method);
  }
  if (p[1] == "models" && p.size() >= 3) return match_model_route(method, p);
  return {};
}

}  // namespace respawn
