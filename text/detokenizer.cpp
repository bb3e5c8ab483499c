#include "respawn/detokenizer.hpp"

#include <algorithm>

namespace respawn {
namespace {

// Prompt ids the window starts with: enough for a decoder's start-of-text rules to act on them
// rather than on the generated text (vLLM uses 5).
constexpr std::size_t kPromptContext = 5;

bool has_visible_text(const std::string& text) {
  return text.find_first_not_of(" \t\n\r") != std::string::npos;
}

bool ends_incomplete(const std::string& text) {
  return text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer,
                                               const std::vector<std::uint32_t>& prompt)
    : tokenizer_(&tokenizer) {
  for (auto it = prompt.rbegin(); it != prompt.rend() && ids_.size() < kPromptContext; ++it) {
    if (!tokenizer.is_special(*it)) ids_.insert(ids_.begin(), *it);
  }
  read_ = ids_.size();
}

std::string IncrementalDetokenizer::decode(std::size_t from, std::size_t to) const {
  return tokenizer_->decode(
      std::vector<std::uint32_t>(ids_.begin() + static_cast<std::ptrdiff_t>(from),
                                 ids_.begin() + static_cast<std::ptrdiff_t>(to)),
      /*skip_special_tokens=*/true);
}

std::string IncrementalDetokenizer::push(std::uint32_t id) {
  // Special tokens decode to nothing here; kept out of the window, they cannot be its first
  // token, whose leading space a decoder would then drop from the next one instead.
  if (tokenizer_->is_special(id)) return "";
  ids_.push_back(id);
  const std::string before = decode(prefix_, read_);
  const std::string now = decode(prefix_, ids_.size());
  if (now.size() <= before.size() || ends_incomplete(now)) return "";
  // The window moves on to the ids that gave this text, unless their first decodes to no
  // visible text: a decoder that drops the space at the start of a text (SentencePiece,
  // Metaspace) drops a whole run of space tokens there, which would lose them.
  if (has_visible_text(decode(read_, read_ + 1))) prefix_ = read_;
  read_ = ids_.size();
  // Drop what the window no longer needs, so a long generation stays linear.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_));
  read_ -= prefix_;
  prefix_ = 0;
  return now.substr(before.size());
}

std::string IncrementalDetokenizer::flush() {
  const std::string before = decode(prefix_, read_);
  const std::string now = decode(prefix_, ids_.size());
  prefix_ = read_ = ids_.size();
  return now.size() > before.size() ? now.substr(before.size()) : "";
}

}  // namespace respawn
