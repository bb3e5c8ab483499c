// Fuzzes the generate request parser (common/generate_request.cpp) with a JSON body: as the
// supervisor reads it from HTTP (prompt in "text_input", parameters at the top level or under
// "parameters") and as the worker reads it from IPC. Whatever the supervisor accepts, the worker
// must accept after the IPC round trip, with the same values.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "respawn/generate_request.hpp"
#include "respawn/json_util.hpp"

using namespace respawn;
using nlohmann::json;

namespace {

void check_round_trip(const GenerateRequest& r, const GenerateLimits& limits) {
  FUZZ_CHECK(r.max_tokens >= 1 && r.max_tokens <= limits.max_tokens, "max_tokens out of range");
  FUZZ_CHECK(r.temperature >= 0.0 && r.temperature <= 100.0, "temperature out of range");
  FUZZ_CHECK(r.top_p > 0.0 && r.top_p <= 1.0, "top_p out of range");
  FUZZ_CHECK(r.stop.size() <= limits.max_stop_strings, "too many stop strings");
  FUZZ_CHECK(memory_weight(r, 1024) <= 1024, "memory weight above the context");
  // The IPC frame carries the JSON text: replace, as the supervisor does, never throw.
  const std::string text = to_json(r).dump(-1, ' ', false, json::error_handler_t::replace);
  const auto back = generate_request_from_json(parse_json(text));
  FUZZ_CHECK(back.ok(), "the worker refuses what the supervisor accepted");
  FUZZ_CHECK(back->max_tokens == r.max_tokens && back->temperature == r.temperature &&
                 back->top_p == r.top_p && back->seed == r.seed && back->stop == r.stop,
             "parameters changed on the way to the worker");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const json body = parse_json(std::string_view(reinterpret_cast<const char*>(data), size));
  if (body.is_discarded()) return 0;

  // The worker's side: the IPC form, {"prompt": ..., params...}.
  if (auto r = generate_request_from_json(body)) check_round_trip(*r, {});

  // The supervisor's side (supervisor/http/api.cpp generate_parameters).
  if (!body.is_object()) return 0;
  json params = json::object();
  for (const auto& [key, value] : body.items()) {
    if (key != "text_input" && key != "parameters") params[key] = value;
  }
  if (json_field(body, "parameters").is_object()) {
    for (const auto& [key, value] : body["parameters"].items()) params[key] = value;
  }
  const auto& prompt = json_field(body, "text_input");
  GenerateLimits small;
  small.max_tokens = 64;
  small.max_prompt_bytes = 16;
  small.max_stop_strings = 2;
  for (const GenerateLimits& limits : {GenerateLimits{}, small}) {
    auto r =
        parse_generate_request(prompt.is_string() ? prompt.get<std::string>() : "", params, limits);
    if (!r) {
      FUZZ_CHECK(r.error().kind == ErrorKind::bad_input, "a refusal that is not bad_input");
      continue;
    }
    FUZZ_CHECK(r->prompt.size() <= limits.max_prompt_bytes, "prompt over the limit");
    check_round_trip(*r, limits);
  }
  return 0;
}
