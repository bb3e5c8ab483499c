#include "http/text_model.hpp"

#include "http/openai.hpp"
#include "respawn/json_util.hpp"
#include "respawn/text_files.hpp"
#include "respawn/utf8.hpp"

namespace respawn {

using nlohmann::json;

namespace {

constexpr std::uint32_t kByteVocabulary = 256;

Result<json> parse_json_object(const std::string& text, const std::string& where) {
  auto parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return make_error(ErrorKind::bad_input, where + " is not a JSON object");
  }
  return parsed;
}

// A special token in tokenizer_config.json: a string, or an AddedToken ({"content": ...}).
std::string special_token(const json& config, const char* key) {
  const auto& v = json_field(config, key);
  if (v.is_string()) return v.get<std::string>();
  return json_get<std::string>(v, "content", "");
}

// tokenizer_config.json's chat_template: a string, or a list of {name, template} of which the
// one named "default" is what apply_chat_template uses.
std::optional<std::string> chat_template_source(const json& config) {
  const auto& v = json_field(config, "chat_template");
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    for (const auto& named : v) {
      if (json_get<std::string>(named, "name", "") == "default") {
        return json_get<std::string>(named, "template", "");
      }
    }
  }
  return std::nullopt;
}

}  // namespace

Result<std::shared_ptr<const TextModel>> TextModel::load(const std::string& path) {
  const TextFiles files(path);
  auto model = std::make_shared<TextModel>();
  std::optional<std::string> config_text, generation_text;
  try {
    model->tokenizer_ = std::make_shared<const Tokenizer>(files.tokenizer());
    // A lone tokenizer file has no companions.
    config_text = files.read("tokenizer_config.json");
    generation_text = files.read("generation_config.json");
  } catch (const std::exception& e) {
    const std::string what = e.what();
    const auto where = files.where("tokenizer.json");
    return make_error(ErrorKind::bad_input, what.rfind(path, 0) == 0 ? what : where + ": " + what);
  }
  if (config_text) {
    const auto where = files.where("tokenizer_config.json");
    auto config = parse_json_object(*config_text, where);
    if (!config) return config.error();
    model->bos_token_ = special_token(*config, "bos_token");
    model->eos_token_ = special_token(*config, "eos_token");
    if (auto source = chat_template_source(*config)) {
      auto parsed = JinjaTemplate::parse(*source);
      if (!parsed) {
        return make_error(ErrorKind::bad_input, where + ": chat_template line " +
                                                    std::to_string(parsed.error().line) + ": " +
                                                    parsed.error().message);
      }
      model->chat_template_ = std::move(*parsed);
    }
  }
  if (generation_text) {
    auto config = parse_json_object(*generation_text, files.where("generation_config.json"));
    if (!config) return config.error();
    const auto& eos = json_field(*config, "eos_token_id");
    for (const auto& id : eos.is_array() ? eos : json::array({eos})) {
      if (id.is_number_unsigned()) model->eos_ids_.push_back(id.get<std::uint32_t>());
    }
  }
  if (model->eos_ids_.empty() && !model->eos_token_.empty()) {
    if (auto id = model->tokenizer_->token_to_id(model->eos_token_)) model->eos_ids_.push_back(*id);
  }
  return std::shared_ptr<const TextModel>(std::move(model));
}

std::vector<std::uint32_t> TextModel::encode(std::string_view text, bool add_special_tokens) const {
  if (tokenizer_) return tokenizer_->encode(text, add_special_tokens);
  return std::vector<std::uint32_t>(
      reinterpret_cast<const unsigned char*>(text.data()),
      reinterpret_cast<const unsigned char*>(text.data()) + text.size());
}

Result<std::string> TextModel::decode(const std::vector<std::uint32_t>& ids) const {
  const std::size_t vocabulary = tokenizer_ ? tokenizer_->vocab_size() : kByteVocabulary;
  for (const auto id : ids) {
    if (id >= vocabulary) {
      return make_error(ErrorKind::bad_input, "token id " + std::to_string(id) +
                                                  " is outside the vocabulary (" +
                                                  std::to_string(vocabulary) + " tokens)");
    }
  }
  // Bytes that are not UTF-8 become U+FFFD, as tokenizers' decode does.
  if (tokenizer_) return sanitize_utf8(tokenizer_->decode(ids, false));
  return sanitize_utf8(std::string(ids.begin(), ids.end()));
}

Result<std::string> TextModel::render_chat(const nlohmann::ordered_json& messages,
                                           bool add_generation_prompt,
                                           const nlohmann::ordered_json& tools) const {
  if (!chat_template_) {
    // The fixed template always ends with the assistant's turn.
    return openai::chat_prompt(json::parse(messages.dump()));
  }
  if (!messages.is_array()) return make_error(ErrorKind::bad_input, "'messages' must be an array");
  ChatTemplateInputs inputs;
  inputs.messages = messages;
  inputs.add_generation_prompt = add_generation_prompt;
  inputs.bos_token = bos_token_;
  inputs.eos_token = eos_token_;
  inputs.tools = tools;
  auto rendered = apply_chat_template(*chat_template_, inputs);
  if (!rendered) {
    return make_error(ErrorKind::bad_input,
                      "the chat template refused the messages: " + rendered.error().message);
  }
  return std::move(*rendered);
}

std::string TextModel::token_text(std::int64_t id) const {
  if (!tokenizer_) return std::string(1, static_cast<char>(id));
  return tokenizer_->decode({static_cast<std::uint32_t>(id)});
}

}  // namespace respawn
