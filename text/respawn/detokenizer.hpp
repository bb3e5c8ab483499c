#pragma once
// Generated ids to text while they come, as Hugging Face's TextStreamer and vLLM's incremental
// detokenizer do: each new id decodes a short window of the latest ids, and the text it adds
// is handed out once it no longer ends in an incomplete UTF-8 sequence (U+FFFD). Special tokens
// (is_special: what decode's skip_special_tokens drops) never enter the window. The window starts in the prompt's last ids, so a first generated token keeps the
// leading space a decoder (Metaspace, Strip) drops at the start of a text. The pieces add up to
// the text of the generated ids as they continue the prompt.
//
// Thread-compatible: one per generated sequence; the Tokenizer must outlive it.
#include <cstdint>
#include <string>
#include <vector>

#include "respawn/tokenizer.hpp"

namespace respawn {

class IncrementalDetokenizer {
 public:
  // `prompt`: the ids the generation continues (only its last few are used).
  IncrementalDetokenizer(const Tokenizer& tokenizer, const std::vector<std::uint32_t>& prompt);

  // The text `id` adds; empty while the text ends in an incomplete UTF-8 sequence.
  std::string push(std::uint32_t id);
  // At the end: what is still held back (an incomplete sequence decodes as U+FFFD).
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  std::vector<std::uint32_t> ids_;
  std::size_t prefix_ = 0;  // the window's first id
  std::size_t read_ = 0;    // ids_[prefix_, read_) decode to text already handed out
  std::string decode(std::size_t from, std::size_t to) const;
};

}  // namespace respawn
