// POST /tokenize and POST /detokenize (docs/http-api.md), in vLLM's shapes. They need no
// worker, so they answer while one restarts.
#include <boost/asio/post.hpp>

#include "http/api.hpp"
#include "http/openai.hpp"
#include "respawn/json_util.hpp"

namespace respawn {

using nlohmann::json;

namespace {

Error bad(const std::string& param, const std::string& what) {
  return make_error(ErrorKind::bad_input, "'" + param + "' " + what);
}

// A boolean field, or `fallback` when it is absent or null.
Result<bool> flag(const json& body, const char* key, bool fallback) {
  const auto& v = json_field(body, key);
  if (v.is_null()) return fallback;
  if (!v.is_boolean()) return bad(key, "must be a boolean");
  return v.get<bool>();
}

}  // namespace

void Api::tokenize(const HttpRequest& request, const json& body, Respond respond) {
  if (auto refused = openai::wrong_model(body, options_.model_name))
    return respond(error_response(*refused));
  const bool chat = body.contains("messages");
  if (chat == body.contains("prompt")) {
    return respond(error_response(
        make_error(ErrorKind::bad_input, "give exactly one of 'prompt' and 'messages'")));
  }
  // vLLM's defaults: a prompt gets the tokenizer's special tokens, a chat its template's.
  const auto add_special = flag(body, "add_special_tokens", !chat);
  const auto add_generation_prompt = flag(body, "add_generation_prompt", true);
  if (!add_special) return respond(error_response(add_special.error()));
  if (!add_generation_prompt) return respond(error_response(add_generation_prompt.error()));
  std::string text;
  if (chat) {
    // Again in the client's key order: a template's tojson writes keys in that order.
    const auto ordered = nlohmann::ordered_json::parse(request.body(), nullptr, false);
    auto rendered = text_->render_chat(ordered["messages"], *add_generation_prompt,
                                       ordered.value("tools", nlohmann::ordered_json()));
    if (!rendered) return respond(error_response(rendered.error()));
    text = std::move(*rendered);
  } else {
    if (!body["prompt"].is_string())
      return respond(error_response(bad("prompt", "must be a string")));
    text = body["prompt"].get<std::string>();
  }
  const auto& info = scheduler_.manager().model_info();
  const json max_model_len = json_field(info, "max_context").is_number_unsigned()
                                 ? json(info["max_context"])
                                 : json(nullptr);
  const bool offload = text.size() >= kTokenizeOffloadBytes;
  auto answer = [text_model = text_, text = std::move(text), add = *add_special, max_model_len] {
    const auto ids = text_model->encode(text, add);
    return json_response(
        http::status::ok,
        {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", max_model_len}});
  };
  if (!offload) return respond(answer());
  boost::asio::post(parse_pool_, [this, answer = std::move(answer), respond]() mutable {
    auto res = std::make_shared<HttpResponse>(answer());
    boost::asio::post(scheduler_.io(),
                      [res, respond = std::move(respond)] { respond(std::move(*res)); });
  });
}

HttpResponse Api::detokenize(const json& body) const {
  if (auto refused = openai::wrong_model(body, options_.model_name))
    return error_response(*refused);
  const auto& tokens = json_field(body, "tokens");
  if (!tokens.is_array()) return error_response(bad("tokens", "must be an array of token ids"));
  std::vector<std::uint32_t> ids;
  ids.reserve(tokens.size());
  for (const auto& t : tokens) {
    if (!t.is_number_unsigned() && !(t.is_number_integer() && t.get<std::int64_t>() >= 0)) {
      return error_response(bad("tokens", "must hold non-negative integers"));
    }
    const auto id = t.get<std::uint64_t>();
    if (id > UINT32_MAX) return error_response(bad("tokens", "holds an id out of range"));
    ids.push_back(static_cast<std::uint32_t>(id));
  }
  auto text = text_->decode(ids);
  if (!text) return error_response(text.error());
  return json_response(http::status::ok, {{"prompt", *text}});
}

}  // namespace respawn
