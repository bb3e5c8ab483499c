#pragma once
// JSON helpers for input that comes from outside the process (HTTP bodies, IPC frames): a
// parse that refuses absurd nesting (nlohmann copies and destroys recursively, so a deep
// document could overflow the stack) and a typed lookup that never throws. Thread-safe.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

#include <nlohmann/json.hpp>

namespace respawn {

inline constexpr std::size_t kMaxJsonDepth = 64;

// Deepest nesting of arrays/objects in `text` (a cheap scan that skips strings).
std::size_t json_depth(std::string_view text);

// Parsed JSON, or a discarded value (is_discarded()) for invalid or too deeply nested text.
// The whole text counts: a NUL byte anywhere (which nlohmann's lexer would take for the end of
// the input, accepting `{}\0garbage`) makes it invalid, as JSON never holds a raw NUL.
nlohmann::json parse_json(std::string_view text, std::size_t max_depth = kMaxJsonDepth);

// j[key] without copying, or a null value when j is not an object or lacks the key.
const nlohmann::json& json_field(const nlohmann::json& j, const char* key);

// j[key] as T if j is an object holding a value of that JSON type that T can hold, else
// `fallback`: an integral T takes only JSON integers within its range (never a float, whose
// conversion could truncate, or overflow with undefined behaviour).
template <typename T>
T json_get(const nlohmann::json& j, const char* key, T fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  if constexpr (std::is_same_v<T, bool>) {
    return it->is_boolean() ? it->template get<bool>() : fallback;
  } else if constexpr (std::is_integral_v<T>) {
    using Limits = std::numeric_limits<T>;
    if (it->is_number_unsigned()) {
      const auto v = it->template get<std::uint64_t>();
      return v <= static_cast<std::uint64_t>(Limits::max()) ? static_cast<T>(v) : fallback;
    }
    if (!it->is_number_integer()) return fallback;  // a float, or not a number
    const auto v = it->template get<std::int64_t>();
    if (v < 0) {
      if constexpr (std::is_signed_v<T>) return v >= Limits::min() ? static_cast<T>(v) : fallback;
      return fallback;
    }
    return static_cast<std::uint64_t>(v) <= static_cast<std::uint64_t>(Limits::max())
               ? static_cast<T>(v)
               : fallback;
  } else if constexpr (std::is_arithmetic_v<T>) {
    return it->is_number() ? it->template get<T>() : fallback;
  } else if constexpr (std::is_constructible_v<T, std::string>) {
    return it->is_string() ? T(it->template get<std::string>()) : fallback;
  } else {
    return fallback;
  }
}

}  // namespace respawn
