#pragma once
// SentencePiece `tokenizer.model` files behind respawn::Tokenizer (docs/tokenizers.md): a
// sentencepiece::SentencePieceProcessor (Debian's libsentencepiece-dev), kept out of the
// public header.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace respawn {

class SentencePieceModel {
 public:
  // `serialized`: the bytes of a tokenizer.model (a ModelProto). Throws TokenizerError.
  explicit SentencePieceModel(std::string_view serialized);
  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  std::vector<std::uint32_t> encode(std::string_view text, bool add_bos) const;
  std::string decode(const std::vector<std::uint32_t>& ids, bool skip_special) const;
  std::optional<std::uint32_t> piece_to_id(std::string_view piece) const;
  std::optional<std::string> id_to_piece(std::uint32_t id) const;
  bool is_special(std::uint32_t id) const;
  std::size_t size() const;

 private:
  struct Processor;
  std::unique_ptr<Processor> processor_;
};

}  // namespace respawn
