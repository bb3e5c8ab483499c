// PCRE2 wrapper: see pcre_regex.hpp.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "pcre_regex.hpp"

#include <stdexcept>

#include <pcre2.h>

#include "unicode_text.hpp"

namespace respawn {

namespace {

struct MatchData {
  pcre2_match_data* data;
  explicit MatchData(const pcre2_code* code)
      : data(pcre2_match_data_create_from_pattern(code, nullptr)) {
    if (data == nullptr) throw std::bad_alloc();
  }
  ~MatchData() { pcre2_match_data_free(data); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
};

}  // namespace

PcreRegex::PcreRegex(std::string_view pattern) : pattern_(pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()), pattern_.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw std::invalid_argument("regex /" + pattern_ + "/ does not compile at offset " +
                                std::to_string(offset) + ": " +
                                reinterpret_cast<const char*>(message));
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

PcreRegex::~PcreRegex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

std::vector<std::pair<std::size_t, std::size_t>> PcreRegex::find_all(
    std::string_view subject) const {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  const auto* code = static_cast<const pcre2_code*>(code_);
  MatchData match(code);
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  std::size_t start = 0;
  while (start <= subject.size()) {
    const int rc = jit_ ? pcre2_jit_match(code, text, subject.size(), start, 0, match.data, nullptr)
                        : pcre2_match(code, text, subject.size(), start, PCRE2_NO_UTF_CHECK,
                                      match.data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      throw std::runtime_error("regex /" + pattern_ +
                               "/ failed: " + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.data);
    const std::size_t begin = ovector[0], end = ovector[1];
    out.emplace_back(begin, end);
    if (end > begin) {
      start = end;
    } else if (end < subject.size()) {
      start = end + unicode::utf8_length(static_cast<unsigned char>(subject[end]));
    } else {
      break;
    }
  }
  return out;
}

}  // namespace respawn
