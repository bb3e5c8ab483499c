// Fuzzes the OpenAI request parser (supervisor/http/openai.cpp) with a JSON body, as a completion
// and as a chat request. Whatever it accepts must reach the worker intact: the generate
// parameters must survive the IPC round trip (the worker re-validates them with the same
// limits), and the answer shapes built from them must serialize.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "http/openai.hpp"
#include "respawn/json_util.hpp"

using namespace respawn;
using nlohmann::json;

namespace {

void check(openai::Kind kind, const json& body) {
  const auto parsed = openai::parse_request(kind, body, "demo");
  if (!parsed) {
    const auto kind = parsed.error().kind;
    FUZZ_CHECK(kind == ErrorKind::bad_input || kind == ErrorKind::not_found,
               "a refusal that is neither bad_input nor not_found");
    openai::error_body(kind == ErrorKind::not_found ? 404 : 400, parsed.error().message).dump();
    return;
  }
  const GenerateRequest& r = parsed->params;
  const std::string ipc = to_json(r).dump(-1, ' ', false, json::error_handler_t::replace);
  const auto back = generate_request_from_json(parse_json(ipc));
  FUZZ_CHECK(back.ok(), "the worker refuses what the OpenAI route accepted");
  FUZZ_CHECK(back->prompt == r.prompt && back->max_tokens == r.max_tokens &&
                 back->temperature == r.temperature && back->top_p == r.top_p &&
                 back->seed == r.seed && back->stop == r.stop,
             "parameters changed on the way to the worker");

  // The answers, from a result as generate_result() shapes it. They are serialized as the
  // server does (json_response, sse_event): invalid UTF-8 replaced, never thrown; the cuts
  // below may split a character, as a worker's text chunk may.
  const auto dump = [](const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  const openai::Ids ids{"cmpl-1-1", 1, "demo"};
  const json result = {{"text_output", r.prompt.substr(0, 16)},
                       {"finish_reason", "length"},
                       {"usage", {{"prompt_tokens", 1}, {"completion_tokens", 1}}}};
  dump(openai::response(kind, ids, result));
  dump(openai::chunk(kind, ids, r.prompt.substr(0, 8), true));
  dump(openai::final_chunk(kind, ids, result));
  if (parsed->include_usage) dump(openai::usage_chunk(kind, ids, result));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const json body = parse_json(std::string_view(reinterpret_cast<const char*>(data), size));
  if (body.is_discarded() || !body.is_object()) return 0;  // the route refuses those first
  check(openai::Kind::completion, body);
  check(openai::Kind::chat, body);
  if (auto prompt = openai::chat_prompt(json_field(body, "messages"))) {
    FUZZ_CHECK(prompt->size() >= 10, "a chat prompt without the assistant turn");
  }
  return 0;
}
