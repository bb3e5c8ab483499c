#pragma once
// Unicode helpers for the tokenizer (internal to respawn_text): UTF-8 decoding and encoding,
// the character classes Rust's `char` and `regex` crate give Hugging Face tokenizers
// (is_whitespace, \w, is_numeric, is_alphanumeric), and ICU's NFC/NFD/NFKC/NFKD normalization
// and Rust's per-character lowercase. Pure functions, thread-safe (ICU's normalizer instances
// are immutable singletons).
#include <cstddef>
#include <string>
#include <string_view>

namespace respawn::unicode {

// The code point starting at s[i] and its length in bytes; s must be valid UTF-8.
char32_t decode_utf8(std::string_view s, std::size_t i, std::size_t* length);
// Length in bytes of the UTF-8 sequence whose lead byte is `lead` (valid UTF-8 assumed).
inline std::size_t utf8_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Whether `s` is well-formed UTF-8 (no surrogates, overlongs or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s);
// `s` with each maximal invalid subsequence replaced by U+FFFD (Rust's from_utf8_lossy).
std::string to_valid_utf8(std::string_view s);

bool is_whitespace(char32_t c);    // Rust char::is_whitespace, regex \s: White_Space
bool is_word_char(char32_t c);     // Rust regex \w: Alphabetic, M, Nd, Pc, Join_Control
bool is_numeric(char32_t c);       // Rust char::is_numeric: Nd, Nl, No
bool is_alphanumeric(char32_t c);  // Rust char::is_alphanumeric: Alphabetic or numeric

enum class NormalForm { nfc, nfd, nfkc, nfkd };  // in this order (an index)
// With Unicode 12.0's data, as tokenizers has it: characters assigned later are left alone.
std::string normalize(std::string_view s, NormalForm form);
// Each code point replaced by its full lowercase mapping, without context (Rust's
// char::to_lowercase, as the Lowercase normalizer applies it).
std::string lowercase(std::string_view s);

}  // namespace respawn::unicode
