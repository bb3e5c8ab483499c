#pragma once
// A compiled PCRE2 regular expression over UTF-8 (PCRE2_UTF | PCRE2_UCP, so \p{L}, \s and \w
// are Unicode-aware; JIT-compiled where the platform has it) for the tokenizer's pre-tokenizer,
// normalizer and decoder patterns, which are written for Oniguruma (lookahead, (?i:...)).
// Thread-safety: immutable after construction; any number of threads may search with one at
// once (match data is per call).
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace respawn {

class PcreRegex {
 public:
  // Throws std::invalid_argument with PCRE2's message when `pattern` does not compile.
  explicit PcreRegex(std::string_view pattern);
  ~PcreRegex();
  PcreRegex(const PcreRegex&) = delete;
  PcreRegex& operator=(const PcreRegex&) = delete;

  // The [start, end) byte ranges of successive non-overlapping matches in `subject` (valid
  // UTF-8), leftmost first; after an empty match the search resumes one character later.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view subject) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace respawn
