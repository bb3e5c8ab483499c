#pragma once
// The model's text side, from `--tokenizer PATH`: its Hugging Face tokenizer (tokenizer.json),
// chat template and special tokens (tokenizer_config.json) and EOS ids (generation_config.json).
// Without one the model is byte-level, as the bundled demo is: a token is a byte of UTF-8, and
// chats use the fixed "<role>: <content>" template (openai.hpp). Loaded once at startup and
// immutable after, so any thread may use it (the API tokenizes long prompts on its helper
// thread).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/jinja.hpp"
#include "respawn/result.hpp"
#include "respawn/tokenizer.hpp"

namespace respawn {

class TextModel {
 public:
  // The byte-level text side (no tokenizer).
  TextModel() = default;
  // PATH: a tokenizer.json, or a folder with tokenizer.json and optionally
  // tokenizer_config.json and generation_config.json. An error names the file and the problem
  // (an unsupported tokenizer feature or template construct among them).
  static Result<std::shared_ptr<const TextModel>> load(const std::string& path);

  bool byte_level() const { return !tokenizer_; }
  std::vector<std::uint32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Ids the tokenizer cannot decode (beyond its vocabulary; > 255 when byte-level) are refused.
  Result<std::string> decode(const std::vector<std::uint32_t>& ids) const;
  // The prompt for a chat: the model's own template rendered as transformers'
  // apply_chat_template(messages, tools=tools, add_generation_prompt=...) does, or the fixed
  // template without one. A malformed chat or a template's raise_exception is a 400. Ordered
  // JSON: tojson writes keys in the order the client sent them, as transformers does.
  Result<std::string> render_chat(const nlohmann::ordered_json& messages,
                                  bool add_generation_prompt,
                                  const nlohmann::ordered_json& tools = nullptr) const;
  // One token's text, for logprobs: its bytes when byte-level (maybe part of a UTF-8
  // sequence), else the tokenizer's decode of it alone.
  std::string token_text(std::int64_t id) const;
  bool has_chat_template() const { return chat_template_.has_value(); }
  const std::vector<std::uint32_t>& eos_token_ids() const { return eos_ids_; }

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::optional<JinjaTemplate> chat_template_;
  std::string bos_token_;
  std::string eos_token_;
  std::vector<std::uint32_t> eos_ids_;
};

}  // namespace respawn
