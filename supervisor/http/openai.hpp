#pragma once
// The OpenAI-compatible API's request and response shapes (/v1/completions,
// /v1/chat/completions, /v1/models), translated to and from respawn's generate job. Pure
// functions over JSON, so every shape is unit-testable; thread-safe. Field names follow the
// OpenAI API reference; see docs/http-api.md for what is supported and ignored.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "respawn/generate_request.hpp"
#include "respawn/result.hpp"

namespace respawn::openai {

enum class Kind { completion, chat };

struct Request {
  GenerateRequest params;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Validates a request body. OpenAI's defaults apply (temperature 1, top_p 1; max_tokens 16 for
// completions, 256 for chat). Errors are bad_input naming the parameter, or not_found for a
// model other than the one served.
Result<Request> parse_request(Kind kind, const nlohmann::json& body, const std::string& model);

// The documented chat template: one "role: content" line per message, then "assistant:".
Result<std::string> chat_prompt(const nlohmann::json& messages);
// A request's "model" when it is not `model` (404) or not a string (400); null is absent.
std::optional<Error> wrong_model(const nlohmann::json& body, const std::string& model);

struct Ids {
  std::string id;            // "cmpl-..." or "chatcmpl-..."
  std::int64_t created = 0;  // unix seconds
  std::string model;
};

// A whole answer from respawn's generate result ({text_output, finish_reason, usage}).
nlohmann::json response(Kind kind, const Ids& ids, const nlohmann::json& result);
// One streamed chunk of text; `first` adds the assistant role to a chat delta.
nlohmann::json chunk(Kind kind, const Ids& ids, std::string_view text, bool first);
// The last chunk: no text, the finish_reason.
nlohmann::json final_chunk(Kind kind, const Ids& ids, const nlohmann::json& result);
// stream_options.include_usage: a chunk with no choices and the usage.
nlohmann::json usage_chunk(Kind kind, const Ids& ids, const nlohmann::json& result);

// {"error": {"message", "type", "param", "code"}} for a status and message.
nlohmann::json error_body(int status, const std::string& message);

nlohmann::json models(const std::string& model, std::int64_t created);

}  // namespace respawn::openai
