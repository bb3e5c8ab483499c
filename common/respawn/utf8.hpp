#pragma once
// UTF-8 repair for text that leaves respawn: a byte-level model can emit any byte sequence,
// and JSON must never carry invalid UTF-8. Pure functions, thread-safe.
#include <cstddef>
#include <string>
#include <string_view>

namespace respawn {

// Copies `bytes`, replacing each maximal invalid subsequence with U+FFFD (as WHATWG/Unicode
// "substitution of maximal subparts" recommends).
std::string sanitize_utf8(std::string_view bytes);

// Length of the longest prefix of `bytes` that ends on a code point boundary, treating a
// truncated-but-valid sequence at the end as incomplete (for streaming: hold it back).
std::size_t complete_utf8_prefix(std::string_view bytes);

// Appends code point `c` encoded as UTF-8 (1 to 4 bytes; no validation).
void append_utf8(std::string& out, char32_t c);

}  // namespace respawn
