#include "http/openai.hpp"

#include "respawn/json_util.hpp"
#include "respawn/utf8.hpp"

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

// A prompt of token ids: [1, 2, ...] or [[1, 2, ...]]; nullopt when `prompt` is not one.
std::optional<Result<std::vector<std::int64_t>>> prompt_ids(const json& prompt) {
  const json& ids =
      prompt.is_array() && prompt.size() == 1 && prompt[0].is_array() ? prompt[0] : prompt;
  if (!ids.is_array() || ids.empty() || !ids[0].is_number()) return std::nullopt;
  // As many ids as a text prompt may have bytes.
  if (const auto most = GenerateLimits{}.max_prompt_bytes; ids.size() > most) {
    return Result<std::vector<std::int64_t>>(
        bad("prompt", "holds more than " + std::to_string(most) + " token ids"));
  }
  std::vector<std::int64_t> out;
  out.reserve(ids.size());
  for (const auto& id : ids) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
        id.get<std::int64_t>() > INT32_MAX) {
      return Result<std::vector<std::int64_t>>(
          bad("prompt", "must hold token ids (non-negative integers)"));
    }
    out.push_back(id.get<std::int64_t>());
  }
  return Result<std::vector<std::int64_t>>(std::move(out));
}

Result<std::string> completion_prompt(const json& prompt) {
  if (prompt.is_string()) return prompt.get<std::string>();
  if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string()) {
    return prompt[0].get<std::string>();
  }
  return bad("prompt",
             "must be a string or an array of token ids (or an array holding one of either)");
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

namespace {

bool given(const json& body, const char* key) {
  return body.contains(key) && !body[key].is_null();
}

Error unsupported(const std::string& param, const std::string& why) {
  return bad(param, "is not supported by this server" + (why.empty() ? "" : ": " + why));
}

// Parameters the server cannot honour are refused, never silently ignored; ranges as OpenAI's.
std::optional<Error> refuse_unsupported(Kind kind, const json& body) {
  if (given(body, "n") && json_get<std::int64_t>(body, "n", 0) != 1) {
    return bad("n", "must be 1");  // an integer: 1.9 is not 1
  }
  for (const char* penalty : {"presence_penalty", "frequency_penalty"}) {
    if (!given(body, penalty)) continue;
    const auto& v = body[penalty];
    if (!v.is_number() || v.get<double>() < -2.0 || v.get<double>() > 2.0) {
      return bad(penalty, "must be a number between -2 and 2");
    }
    if (v.get<double>() != 0.0) return unsupported(penalty, "only 0 is");
  }
  if (given(body, "logit_bias") && !body["logit_bias"].empty()) {
    return unsupported("logit_bias", "only an empty map is");
  }
  if (given(body, "temperature") && body["temperature"].is_number() &&
      body["temperature"].get<double>() > 2.0) {
    return bad("temperature", "must be between 0 and 2");
  }
  if (kind == Kind::completion) {
    if (given(body, "best_of") && json_get<std::int64_t>(body, "best_of", 0) != 1) {
      return unsupported("best_of", "only 1 is");
    }
    if (given(body, "echo") && body["echo"] != false) return unsupported("echo", "only false is");
    if (given(body, "suffix") && body["suffix"] != "") return unsupported("suffix", "");
    return std::nullopt;
  }
  if (given(body, "tools") && !body["tools"].empty()) {
    return unsupported("tools", "it does not return tool calls");
  }
  if (given(body, "tool_choice") && body["tool_choice"] != "none") {
    return unsupported("tool_choice", "it does not return tool calls");
  }
  for (const char* key : {"functions", "function_call", "audio", "prediction"}) {
    if (given(body, key)) return unsupported(key, "");
  }
  if (given(body, "response_format") &&
      json_get<std::string>(body["response_format"], "type", "") != "text") {
    return unsupported("response_format", "only {\"type\": \"text\"} is");
  }
  return std::nullopt;
}

// The number of most likely tokens to report with each one (-1: no logprobs): chat's
// logprobs (a boolean) and top_logprobs (0 to 20), or the completions API's logprobs (0 to 5).
Result<int> read_logprobs(Kind kind, const json& body) {
  if (kind == Kind::completion) {
    if (!given(body, "logprobs")) return -1;
    const auto& v = body["logprobs"];
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > 5) {
      return bad("logprobs", "must be an integer between 0 and 5");
    }
    return v.get<int>();
  }
  const auto& on = json_field(body, "logprobs");
  if (!on.is_null() && !on.is_boolean()) return bad("logprobs", "must be a boolean");
  const bool wanted = on.is_boolean() && on.get<bool>();
  if (!given(body, "top_logprobs")) return wanted ? 0 : -1;
  const auto& top = body["top_logprobs"];
  if (!top.is_number_integer() || top.get<std::int64_t>() < 0 ||
      top.get<std::int64_t>() > kMaxTopLogprobs) {
    return bad("top_logprobs", "must be an integer between 0 and 20");
  }
  if (!wanted) return bad("top_logprobs", "needs 'logprobs' set to true");
  return top.get<int>();
}

}  // namespace

Result<Request> parse_request(Kind kind, const json& body, const std::string& model,
                              bool fixed_chat_template) {
  if (auto refused = wrong_model(body, model)) return *refused;
  if (auto refused = refuse_unsupported(kind, body)) return *refused;
  auto logprobs = read_logprobs(kind, body);
  if (!logprobs) return logprobs.error();
  std::vector<std::int64_t> ids;
  if (kind == Kind::completion) {
    if (auto given_ids = prompt_ids(json_field(body, "prompt"))) {
      if (!*given_ids) return given_ids->error();
      ids = std::move(**given_ids);
    }
  }
  auto prompt = kind == Kind::chat ? chat_prompt(json_field(body, "messages"))
                : ids.empty()      ? completion_prompt(json_field(body, "prompt"))
                                   : Result<std::string>(std::string());
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
  // The fixed template's next turn ends the assistant's reply.
  if (kind == Kind::chat && fixed_chat_template) parsed->stop.push_back("\nuser:");
  parsed->logprobs = *logprobs;
  parsed->prompt_ids = std::move(ids);
  Request request{std::move(*parsed)};
  if (given(body, "stream")) {
    if (!body["stream"].is_boolean()) return bad("stream", "must be a boolean");
    request.stream = body["stream"].get<bool>();
  }
  if (given(body, "stream_options")) {
    if (!request.stream) return bad("stream_options", "is only allowed when 'stream' is true");
    request.include_usage = json_get(body["stream_options"], "include_usage", false);
  }
  return request;
}

json logprobs(Kind kind, const json& entries,
              const std::function<std::string(std::int64_t)>& token_text) {
  // token_text may return part of a UTF-8 sequence: "bytes" has it exactly, "token" as text.
  const auto bytes = [](const std::string& text) {
    json out = json::array();
    for (const unsigned char c : text) out.push_back(c);
    return out;
  };
  // An entry is [id, logprob, [[id, logprob], ...]] (the worker's result).
  if (kind == Kind::chat) {
    json content = json::array();
    for (const auto& e : entries) {
      const auto text = token_text(e[0].get<std::int64_t>());
      json top = json::array();
      for (const auto& t : e[2]) {
        const auto alt = token_text(t[0].get<std::int64_t>());
        top.push_back({{"token", sanitize_utf8(alt)}, {"logprob", t[1]}, {"bytes", bytes(alt)}});
      }
      content.push_back({{"token", sanitize_utf8(text)},
                         {"logprob", e[1]},
                         {"bytes", bytes(text)},
                         {"top_logprobs", top}});
    }
    return {{"content", std::move(content)}, {"refusal", nullptr}};
  }
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       offsets = json::array();
  std::size_t offset = 0;
  for (const auto& e : entries) {
    const auto text = sanitize_utf8(token_text(e[0].get<std::int64_t>()));
    tokens.push_back(text);
    token_logprobs.push_back(e[1]);
    json top = json::object();
    for (const auto& t : e[2]) top[sanitize_utf8(token_text(t[0].get<std::int64_t>()))] = t[1];
    top_logprobs.push_back(std::move(top));
    offsets.push_back(offset);
    offset += text.size();
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top_logprobs)},
          {"text_offset", std::move(offsets)}};
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
  // A refusal of a parameter reads "'name' ...": that names it.
  json param = nullptr;
  if (client && message.size() > 2 && message[0] == '\'') {
    const auto end = message.find('\'', 1);
    if (end != std::string::npos && end > 1) param = message.substr(1, end - 1);
  }
  return {{"error",
           {{"message", message},
            {"type", client ? "invalid_request_error" : "server_error"},
            {"param", std::move(param)},
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
