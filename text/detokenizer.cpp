#include "respawn/detokenizer.hpp"

#include <algorithm>

namespace respawn {
namespace {

// Prompt ids the window starts with: enough for a decoder's start-of-text rules to act on them
// rather than on the generated text (vLLM uses 5).
constexpr std::size_t kPromptContext = 5;

bool ends_incomplete(const std::string& text) {
  return text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer,
                                               const std::vector<std::uint32_t>& prompt)
    : tokenizer_(&tokenizer) {
  const std::size_t keep = std::min(prompt.size(), kPromptContext);
  ids_.assign(prompt.end() - static_cast<std::ptrdiff_t>(keep), prompt.end());
  read_ = ids_.size();
}

std::string IncrementalDetokenizer::decode(std::size_t from, std::size_t to) const {
  return tokenizer_->decode(
      std::vector<std::uint32_t>(ids_.begin() + static_cast<std::ptrdiff_t>(from),
                                 ids_.begin() + static_cast<std::ptrdiff_t>(to)),
      /*skip_special_tokens=*/true);
}

std::string IncrementalDetokenizer::push(std::uint32_t id) {
  ids_.push_back(id);
  const std::string before = decode(prefix_, read_);
  const std::string now = decode(prefix_, ids_.size());
  if (now.size() <= before.size() || ends_incomplete(now)) return "";
  prefix_ = read_;
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
