#include "http/openai.hpp"

#include "respawn/json_util.hpp"

namespace respawn::openai {

using nlohmann::json;

namespace {

Error bad(const std::string& param, const std::string& what) {
  return make_error(ErrorKind::bad_input, "'" + param + "' " + what);
}

const char* object_name(Kind kind, bool chunk) {
  if (kind == Kind::chat) return chunk ? "chat.completion.chunk" : "chat.completion";
  return "text_completion";
}

json envelope(Kind kind, const Ids& ids, bool chunk) {
  return {{"id", ids.id},
          {"object", object_name(kind, chunk)},
          {"created", ids.created},
          {"model", ids.model}};
}

Result<std::string> completion_prompt(const json& prompt) {
  if (prompt.is_string()) return prompt.get<std::string>();
  if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string()) {
    return prompt[0].get<std::string>();
  }
  return bad("prompt", "must be a string (or an array holding one string)");
}

// Message content: a string, or an array of parts of which the text parts count.
Result<std::string> content_text(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return bad("messages", "content must be a string or an array of parts");
  std::string text;
  for (const auto& part : content) {
    if (json_get<std::string>(part, "type", "") != "text" ||
        !json_field(part, "text").is_string()) {
      return bad("messages", "only text content parts are supported");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

}  // namespace

Result<std::string> chat_prompt(const json& messages) {
  if (!messages.is_array() || messages.empty()) return bad("messages", "must be a non-empty array");
  std::string prompt;
  for (const auto& m : messages) {
    const auto role = json_get<std::string>(m, "role", "");
    if (role.empty()) return bad("messages", "each message needs a string 'role'");
    auto text = content_text(json_field(m, "content"));
    if (!text) return text.error();
    prompt += role + ": " + *text + "\n";
  }
  return prompt + "assistant:";
}

std::optional<Error> wrong_model(const json& body, const std::string& model) {
  const auto& asked = json_field(body, "model");  // null: as absent, like every other field
  if (asked.is_null()) return std::nullopt;
  if (!asked.is_string()) return bad("model", "must be a string");
  if (asked.get_ref<const std::string&>() == model) return std::nullopt;
  return make_error(ErrorKind::not_found, "The model '" + asked.get<std::string>() +
                                              "' does not exist; this server serves '" + model +
                                              "'");
}

Result<Request> parse_request(Kind kind, const json& body, const std::string& model) {
  if (auto refused = wrong_model(body, model)) return *refused;
  if (!json_field(body, "n").is_null() && json_get<std::int64_t>(body, "n", 0) != 1) {
    return bad("n", "must be 1");  // an integer: 1.9 is not 1
  }
  auto prompt = kind == Kind::chat ? chat_prompt(json_field(body, "messages"))
                                   : completion_prompt(json_field(body, "prompt"));
  if (!prompt) return prompt.error();
  json params = {
      {"temperature", 1.0}, {"top_p", 1.0}, {"max_tokens", kind == Kind::chat ? 256 : 16}};
  for (const char* key : {"temperature", "top_p", "seed", "stop", "max_tokens"}) {
    if (body.contains(key) && !body[key].is_null()) params[key] = body[key];
  }
  if (const auto& most = json_field(body, "max_completion_tokens");
      kind == Kind::chat && !most.is_null()) {
    // Checked here so that a refusal names the field the client sent.
    const std::int64_t limit = GenerateLimits{}.max_tokens;
    if (!most.is_number_integer() || most.get<std::int64_t>() < 1 ||
        most.get<std::int64_t>() > limit) {
      return bad("max_completion_tokens",
                 "must be an integer between 1 and " + std::to_string(limit));
    }
    params["max_tokens"] = most;
  }
  auto parsed = parse_generate_request(std::move(*prompt), params);
  if (!parsed) return parsed.error();
  // The template's next turn ends the assistant's reply.
  if (kind == Kind::chat) parsed->stop.push_back("\nuser:");
  Request request{std::move(*parsed)};
  if (body.contains("stream") && !body["stream"].is_null()) {
    if (!body["stream"].is_boolean()) return bad("stream", "must be a boolean");
    request.stream = body["stream"].get<bool>();
  }
  request.include_usage = json_get(json_field(body, "stream_options"), "include_usage", false);
  return request;
}

json response(Kind kind, const Ids& ids, const json& result) {
  json choice = {{"index", 0}, {"finish_reason", result["finish_reason"]}, {"logprobs", nullptr}};
  if (kind == Kind::chat) {
    choice["message"] = {{"role", "assistant"}, {"content", result["text_output"]}};
  } else {
    choice["text"] = result["text_output"];
  }
  json out = envelope(kind, ids, false);
  out["choices"] = json::array({choice});
  out["usage"] = result["usage"];
  return out;
}

json chunk(Kind kind, const Ids& ids, std::string_view text, bool first) {
  json choice = {{"index", 0}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
  if (kind == Kind::chat) {
    choice["delta"] = {{"content", text}};
    if (first) choice["delta"]["role"] = "assistant";
  } else {
    choice["text"] = text;
  }
  json out = envelope(kind, ids, true);
  out["choices"] = json::array({choice});
  return out;
}

json final_chunk(Kind kind, const Ids& ids, const json& result) {
  json out = chunk(kind, ids, "", false);
  auto& choice = out["choices"][0];
  choice["finish_reason"] = result["finish_reason"];
  if (kind == Kind::chat) choice["delta"] = json::object();
  return out;
}

json usage_chunk(Kind kind, const Ids& ids, const json& result) {
  json out = envelope(kind, ids, true);
  out["choices"] = json::array();
  out["usage"] = result["usage"];
  return out;
}

json error_body(int status, const std::string& message) {
  const bool client = status >= 400 && status < 500;
  json code = nullptr;
  if (status == 404) code = "model_not_found";
  return {{"error",
           {{"message", message},
            {"type", client ? "invalid_request_error" : "server_error"},
            {"param", nullptr},
            {"code", code}}}};
}

json models(const std::string& model, std::int64_t created) {
  return {
      {"object", "list"},
      {"data",
       json::array(
           {{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "respawn"}}})}};
}

}  // namespace respawn::openai
