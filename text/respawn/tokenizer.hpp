#pragma once
// Hugging Face tokenizer.json tokenizers (BPE models: GPT-2, Llama-3, Qwen2, Llama-2/Mistral
// style) whose encode and decode agree id for id and byte for byte with the `tokenizers` Python
// library's Tokenizer.encode(text, add_special_tokens) and decode(ids, skip_special_tokens).
// docs/tokenizers.md lists the supported components; anything else (another model, a
// normalizer, pre-tokenizer, post-processor or decoder outside the list, truncation, padding,
// BPE dropout) is refused at load with a TokenizerError naming it, never encoded differently.
//
// It also reads SentencePiece `tokenizer.model` files (Llama-2, Mistral v0.1, Gemma, T5, many
// Indic models) through libsentencepiece's SentencePieceProcessor, as the `sentencepiece`
// Python package and transformers' slow LlamaTokenizer use them: encode is the processor's
// Encode with BOS first when add_special_tokens and the model has one; decode is its Decode;
// control and unknown pieces are the special ones. Control symbols written in the text
// ("<s>") are encoded as text, never as their id (SentencePiece's Encode does not match them).
//
// Thread-safety: a Tokenizer is immutable after load apart from the BPE model's word cache,
// which a mutex guards; copies share one loaded tokenizer, and any number of threads may
// encode and decode with it at once.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace respawn {

class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Tokenizer {
 public:
  // Each throws TokenizerError: unreadable file, invalid JSON, or anything unsupported.
  static Tokenizer from_json(const nlohmann::json& config);
  static Tokenizer from_json_text(std::string_view text);
  // The bytes of a SentencePiece tokenizer.model (a serialized ModelProto).
  static Tokenizer from_sentencepiece(std::string_view model);
  // A tokenizer.json (JSON text starting with '{') or a SentencePiece tokenizer.model.
  static Tokenizer from_file(const std::string& path);

  // The ids of `text`: added tokens matched first, then the normalizer, pre-tokenizer and BPE
  // model on the rest, then (with add_special_tokens) the post-processor's BOS/EOS. Bytes that
  // are not valid UTF-8 are read as U+FFFD, as Python's errors="replace" would.
  std::vector<std::uint32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  // The text of `ids` through the decoder (unknown ids are skipped, as tokenizers does).
  std::string decode(const std::vector<std::uint32_t>& ids, bool skip_special_tokens = false) const;

  // Added tokens first, then the model's vocab (tokenizers' token_to_id / id_to_token).
  // SentencePiece: the model's pieces (nullopt for a piece it lacks, not unk's id).
  std::optional<std::uint32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(std::uint32_t id) const;
  // Whether `id` is an added token marked special (what skip_special_tokens drops).
  // SentencePiece: a control piece (<s>, </s>, <pad>, ...) or the unknown piece.
  bool is_special(std::uint32_t id) const;
  // One past the highest id of the vocab and the added tokens (an embedding table's rows);
  // SentencePiece: the number of pieces.
  std::size_t vocab_size() const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace respawn
