// SentencePiece models: see tokenizer_spm.hpp.
#include "tokenizer_spm.hpp"

#include <sentencepiece_processor.h>

#include "respawn/tokenizer.hpp"

namespace respawn {

struct SentencePieceModel::Processor {
  sentencepiece::SentencePieceProcessor sp;
  int size = 0;
};

SentencePieceModel::SentencePieceModel(std::string_view serialized)
    : processor_(std::make_unique<Processor>()) {
  if (serialized.empty()) throw TokenizerError("the SentencePiece model is empty");
  const auto status = processor_->sp.LoadFromSerializedProto(serialized);
  if (!status.ok()) {
    const std::string why = status.ToString();
    // The library's message for bytes that are no ModelProto is its source line.
    if (why.find("ParseFromArray") != std::string::npos) {
      throw TokenizerError("not a SentencePiece model (its protobuf does not parse)");
    }
    throw TokenizerError("invalid SentencePiece model: " + why);
  }
  processor_->size = processor_->sp.GetPieceSize();
  if (processor_->size <= 0) throw TokenizerError("the SentencePiece model has no pieces");
}

SentencePieceModel::~SentencePieceModel() = default;

std::vector<std::uint32_t> SentencePieceModel::encode(std::string_view text, bool add_bos) const {
  std::vector<int> pieces;
  if (const auto status = processor_->sp.Encode(text, &pieces); !status.ok()) {
    throw TokenizerError("SentencePiece encode failed: " + status.ToString());
  }
  std::vector<std::uint32_t> ids;
  ids.reserve(pieces.size() + 1);
  if (add_bos && processor_->sp.bos_id() >= 0) {
    ids.push_back(static_cast<std::uint32_t>(processor_->sp.bos_id()));
  }
  for (const int id : pieces) ids.push_back(static_cast<std::uint32_t>(id));
  return ids;
}

std::string SentencePieceModel::decode(const std::vector<std::uint32_t>& ids,
                                       bool skip_special) const {
  std::vector<int> known;
  known.reserve(ids.size());
  for (const std::uint32_t id : ids) {
    if (id >= static_cast<std::uint32_t>(processor_->size)) continue;
    if (skip_special && is_special(id)) continue;
    known.push_back(static_cast<int>(id));
  }
  std::string text;
  if (const auto status = processor_->sp.Decode(known, &text); !status.ok()) {
    throw TokenizerError("SentencePiece decode failed: " + status.ToString());
  }
  return text;
}

std::optional<std::uint32_t> SentencePieceModel::piece_to_id(std::string_view piece) const {
  // PieceToId answers unk_id for a piece it does not know.
  const int id = processor_->sp.PieceToId(piece);
  if (id < 0 || id >= processor_->size || processor_->sp.IdToPiece(id) != piece) {
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(id);
}

std::optional<std::string> SentencePieceModel::id_to_piece(std::uint32_t id) const {
  if (id >= static_cast<std::uint32_t>(processor_->size)) return std::nullopt;
  return processor_->sp.IdToPiece(static_cast<int>(id));
}

bool SentencePieceModel::is_special(std::uint32_t id) const {
  if (id >= static_cast<std::uint32_t>(processor_->size)) return false;
  const int i = static_cast<int>(id);
  return processor_->sp.IsControl(i) || processor_->sp.IsUnknown(i);
}

std::size_t SentencePieceModel::size() const {
  return static_cast<std::size_t>(processor_->size);
}

}  // namespace respawn
