#include "respawn/generate_request.hpp"

#include <algorithm>
#include <cstdint>

namespace respawn {
namespace {

Error bad(const std::string& field, const std::string& what) {
  return make_error(ErrorKind::bad_input, "'" + field + "' " + what);
}

std::optional<Error> read_number(const nlohmann::json& params, const char* key, double min,
                                 double max, double& out) {
  if (!params.contains(key) || params[key].is_null()) return std::nullopt;
  const auto& v = params[key];
  if (!v.is_number()) return bad(key, "must be a number");
  const double d = v.get<double>();
  if (!(d >= min && d <= max)) {
    return bad(key, "must be between " + nlohmann::json(min).dump() + " and " +
                        nlohmann::json(max).dump());
  }
  out = d;
  return std::nullopt;
}

std::optional<Error> read_stop(const nlohmann::json& params, const GenerateLimits& limits,
                               std::vector<std::string>& out) {
  if (!params.contains("stop") || params["stop"].is_null()) return std::nullopt;
  const auto& v = params["stop"];
  if (v.is_string()) {
    if (!v.get_ref<const std::string&>().empty()) out.push_back(v.get<std::string>());
    return std::nullopt;
  }
  if (!v.is_array()) return bad("stop", "must be a string or an array of strings");
  if (v.size() > limits.max_stop_strings) {
    return bad("stop", "may hold at most " + std::to_string(limits.max_stop_strings) + " strings");
  }
  for (const auto& s : v) {
    if (!s.is_string()) return bad("stop", "must be a string or an array of strings");
    if (!s.get_ref<const std::string&>().empty()) out.push_back(s.get<std::string>());
  }
  return std::nullopt;
}

}  // namespace

Result<GenerateRequest> parse_generate_request(std::string prompt, const nlohmann::json& params,
                                               const GenerateLimits& limits) {
  if (!params.is_object()) return make_error(ErrorKind::bad_input, "parameters must be an object");
  if (prompt.size() > limits.max_prompt_bytes) {
    return bad("prompt", "is longer than " + std::to_string(limits.max_prompt_bytes) + " bytes");
  }
  GenerateRequest r;
  r.prompt = std::move(prompt);
  if (params.contains("max_tokens") && !params["max_tokens"].is_null()) {
    const auto& v = params["max_tokens"];
    if (!v.is_number_integer() || v.get<std::int64_t>() < 1 ||
        v.get<std::int64_t>() > limits.max_tokens) {
      return bad("max_tokens",
                 "must be an integer between 1 and " + std::to_string(limits.max_tokens));
    }
    r.max_tokens = v.get<int>();
  }
  if (auto e = read_number(params, "temperature", 0.0, 100.0, r.temperature)) return *e;
  if (auto e = read_number(params, "top_p", 0.0, 1.0, r.top_p)) return *e;
  if (r.top_p <= 0.0) return bad("top_p", "must be greater than 0");
  if (params.contains("seed") && !params["seed"].is_null()) {
    const auto& v = params["seed"];
    if (!v.is_number_integer() ||
        (v.is_number_integer() && !v.is_number_unsigned() && v.get<std::int64_t>() < 0)) {
      return bad("seed", "must be a non-negative integer");
    }
    r.seed = v.get<std::uint64_t>();
  }
  if (auto e = read_stop(params, limits, r.stop)) return *e;
  return r;
}

nlohmann::json to_json(const GenerateRequest& r) {
  nlohmann::json j = {{"prompt", r.prompt},
                      {"max_tokens", r.max_tokens},
                      {"temperature", r.temperature},
                      {"top_p", r.top_p},
                      {"stop", r.stop}};
  if (r.seed) j["seed"] = *r.seed;
  if (!r.prompt_ids.empty()) j["prompt_ids"] = r.prompt_ids;
  if (!r.stop_token_ids.empty()) j["stop_token_ids"] = r.stop_token_ids;
  if (r.logprobs >= 0) j["logprobs"] = r.logprobs;
  return j;
}

namespace {

std::optional<Error> read_ids(const nlohmann::json& j, const char* key,
                              std::vector<std::int64_t>& out) {
  if (!j.contains(key)) return std::nullopt;
  if (!j[key].is_array()) return bad(key, "must be an array of token ids");
  out.reserve(j[key].size());
  for (const auto& id : j[key]) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
        id.get<std::int64_t>() > INT32_MAX) {
      return bad(key, "must hold token ids (integers from 0 to 2^31-1)");
    }
    out.push_back(id.get<std::int64_t>());
  }
  return std::nullopt;
}

}  // namespace

Result<GenerateRequest> generate_request_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) {
    return make_error(ErrorKind::bad_input, "generate request needs a string 'prompt'");
  }
  GenerateLimits limits;
  limits.max_stop_strings += kServerStopStrings;
  auto r = parse_generate_request(j["prompt"].get<std::string>(), j, limits);
  if (!r) return r;
  if (auto e = read_ids(j, "prompt_ids", r->prompt_ids)) return *e;
  if (auto e = read_ids(j, "stop_token_ids", r->stop_token_ids)) return *e;
  if (j.contains("logprobs")) {
    const auto& v = j["logprobs"];
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 ||
        v.get<std::int64_t>() > kMaxTopLogprobs) {
      return bad("logprobs", "must be an integer from 0 to " + std::to_string(kMaxTopLogprobs));
    }
    r->logprobs = v.get<int>();
  }
  return r;
}

std::size_t prompt_tokens(const GenerateRequest& request) {
  return request.prompt_ids.empty() ? request.prompt.size() : request.prompt_ids.size();
}

std::uint64_t memory_weight(const GenerateRequest& request, std::size_t max_context) {
  const std::size_t tokens = std::max<std::size_t>(prompt_tokens(request), 1) +
                             static_cast<std::size_t>(std::max(request.max_tokens, 0));
  return std::min(tokens, max_context);
}

}  // namespace respawn
