#pragma once
// The stages of a Hugging Face tokenizer.json around the model (internal to respawn_text):
// normalizers, pre-tokenizers, post-processors and decoders, each built from its JSON object
// and applied with the semantics of the tokenizers library (ids only: offsets are not kept).
// A component or option outside docs/tokenizers.md's list is a TokenizerError at build time.
// Thread-safety: every stage is immutable after construction; any number of threads may use
// one at once.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace respawn {

// A split of the input on its way to the model: its text, and whether it begins at offset 0
// of the original input (Metaspace's prepend_scheme "first" asks).
struct TextPiece {
  std::string text;
  bool at_start = false;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits; empty splits are dropped.
  virtual void pre_tokenize(std::vector<TextPiece>& pieces) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // The ids of a single sequence with its special tokens added (when asked).
  virtual void process(std::vector<std::uint32_t>& ids, bool add_special_tokens) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // tokenizers' decode_chain: tokens in, tokens out (the caller concatenates them).
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Each returns nullptr for a JSON null, and throws TokenizerError for anything unsupported.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j);
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j);

}  // namespace respawn
