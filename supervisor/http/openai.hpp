#pragma once
// The OpenAI-compatible API's request and response shapes (/v1/completions,
// /v1/chat/completions, /v1/models), translated to and from respawn's generate job. Pure
// functions over JSON, so every shape is unit-testable; thread-safe. Field names follow the
// OpenAI API reference; see docs/http-api.md for what is supported and ignored.
#include <cstdint>
#include <functional>
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
// model other than the one served. A completion's prompt may be token ids ([1, 2] or [[1, 2]]):
// then params.prompt_ids holds them and params.prompt is empty. Parameters the server cannot honour
// (tools, penalties, logit_bias, response_format, n > 1, ...) are refused. A chat's prompt is the
// fixed template's (chat_prompt), whose next-turn marker then also stops the reply unless
// !fixed_chat_template (the caller renders the model's own template instead).
Result<Request> parse_request(Kind kind, const nlohmann::json& body, const std::string& model,
                              bool fixed_chat_template = true);

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

// A choice's "logprobs" from the worker's [[id, logprob, [[id, logprob], ...]], ...]: chat's
// {"content": [{token, logprob, bytes, top_logprobs}]} or the completions API's {tokens,
// token_logprobs, top_logprobs, text_offset}; `token_text` gives a token's text.
nlohmann::json logprobs(Kind kind, const nlohmann::json& entries,
                        const std::function<std::string(std::int64_t)>& token_text);

// {"error": {"message", "type", "param", "code"}} for a status and message; a message that
// starts with a quoted name ("'top_p' must ...") names that param.
nlohmann::json error_body(int status, const std::string& message);

nlohmann::json models(const std::string& model, std::int64_t created);

}  // namespace respawn::openai
