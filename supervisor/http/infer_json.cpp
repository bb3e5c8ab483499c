#include "http/infer_json.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http/http_types.hpp"
#include "respawn/json_util.hpp"
#include "respawn/tensor_codec.hpp"

namespace respawn {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// A `data` array found in the text: where it lies, the input it belongs to, its numbers.
struct Found {
  std::size_t input = 0;
  const char* begin = nullptr;
  const char* end = nullptr;
  std::vector<std::uint8_t> numbers;  // JsonNumbers
};

// Walks the text only as far as needed to find the `data` arrays. Outside them it is lenient:
// whatever it skips goes to nlohmann unchanged, which refuses what is not JSON. A `data` array
// is read strictly (JSON's grammar), so replacing it keeps a valid text valid and an invalid
// one invalid.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  // The top-level object; nullopt where this reader cannot be sure of what it found.
  std::optional<std::vector<Found>> body() {
    std::vector<Found> found;
    if (!eat('{')) return std::nullopt;
    if (eat('}')) return found;
    bool seen_inputs = false;
    do {
      const auto k = key();
      if (!k) return std::nullopt;
      if (*k == "inputs") {
        if (std::exchange(seen_inputs, true) || !inputs(found)) return std::nullopt;
      } else if (!skip_value()) {
        return std::nullopt;
      }
    } while (eat(','));
    if (!eat('}')) return std::nullopt;
    return found;
  }

 private:
  void space() {
    while (p_ != end_ && is_space(*p_)) ++p_;
  }
  bool at(char c) {
    space();
    return p_ != end_ && *p_ == c;
  }
  bool eat(char c) {
    if (!at(c)) return false;
    ++p_;
    return true;
  }

  // `"key":`, for a key without escapes (one with an escape could spell "data").
  std::optional<std::string_view> key() {
    if (!eat('"')) return std::nullopt;
    const char* start = p_;
    while (p_ != end_ && *p_ != '"') {
      if (*p_ == '\\') return std::nullopt;
      ++p_;
    }
    if (p_ == end_) return std::nullopt;
    const std::string_view k(start, static_cast<std::size_t>(p_ - start));
    ++p_;
    if (!eat(':')) return std::nullopt;
    return k;
  }

  bool skip_string() {  // at its opening quote
    for (++p_; p_ != end_;) {
      if (*p_ == '\\') {
        p_ += end_ - p_ >= 2 ? 2 : 1;
      } else if (*p_++ == '"') {
        return true;
      }
    }
    return false;
  }

  bool skip_value() {
    space();
    if (p_ == end_) return false;
    if (*p_ == '"') return skip_string();
    if (*p_ != '[' && *p_ != '{') {  // a number or a literal
      while (p_ != end_ && *p_ != ',' && *p_ != ']' && *p_ != '}' && !is_space(*p_)) ++p_;
      return true;
    }
    std::size_t depth = 0;
    while (p_ != end_) {
      const char c = *p_;
      if (c == '"') {
        if (!skip_string()) return false;
        continue;
      }
      ++p_;
      if (c == '[' || c == '{') {
        ++depth;
      } else if ((c == ']' || c == '}') && --depth == 0) {
        return true;
      }
    }
    return false;
  }

  bool inputs(std::vector<Found>& found) {
    if (!at('[')) return skip_value();
    ++p_;
    if (eat(']')) return true;
    std::size_t index = 0;
    do {
      if (at('{')) {
        if (!input(index, found)) return false;
      } else if (!skip_value()) {
        return false;
      }
      ++index;
    } while (eat(','));
    return eat(']');
  }

  bool input(std::size_t index, std::vector<Found>& found) {
    ++p_;  // '{'
    if (eat('}')) return true;
    bool seen_data = false;
    do {
      const auto k = key();
      if (!k) return false;
      if (*k != "data") {
        if (!skip_value()) return false;
        continue;
      }
      if (std::exchange(seen_data, true)) return false;
      space();
      Found f{index, p_, nullptr, {}};
      // The array's first '[' is at depth 4: the body, `inputs`, the input, the array.
      if (p_ != end_ && *p_ == '[' && numbers(f.numbers, kMaxJsonDepth - 3)) {
        f.end = p_;
        found.push_back(std::move(f));
      } else {
        p_ = f.begin;  // nlohmann reads it
        if (!skip_value()) return false;
      }
    } while (eat(','));
    return eat('}');
  }

  // An array (at its '[') of numbers and arrays, flattened into `out`; false for anything else,
  // or for nesting deeper than `max_depth`.
  bool numbers(std::vector<std::uint8_t>& out, std::size_t max_depth) {
    enum class Next { value_or_close, value, comma_or_close };
    Next next = Next::value_or_close;
    std::size_t depth = 1;
    ++p_;
    while (depth > 0) {
      space();
      if (p_ == end_) return false;
      const char c = *p_;
      if (next == Next::comma_or_close) {
        if (c == ',') {
          next = Next::value;
        } else if (c == ']') {
          --depth;
        } else {
          return false;
        }
        ++p_;
      } else if (c == '[') {
        if (++depth > max_depth) return false;
        ++p_;
        next = Next::value_or_close;
      } else if (c == ']' && next == Next::value_or_close) {
        ++p_;
        --depth;
        next = Next::comma_or_close;
      } else if (number(out)) {
        next = Next::comma_or_close;
      } else {
        return false;
      }
    }
    return true;
  }

  bool digits() {
    const char* start = p_;
    while (p_ != end_ && is_digit(*p_)) ++p_;
    return p_ != start;
  }

  // One number in JSON's grammar, kept as nlohmann keeps it; false for one that nlohmann would
  // read differently (an integer out of 64-bit range becomes a double there; a double out of
  // range is left to it as well).
  bool number(std::vector<std::uint8_t>& out) {
    const char* start = p_;
    if (*p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (!digits()) {
      return false;
    }
    bool floating = false;
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (!digits()) return false;
      floating = true;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digits()) return false;
      floating = true;
    }
    JsonNumber n;
    std::from_chars_result r{};
    if (floating) {
      n.kind = JsonNumber::Kind::floating;
      r = std::from_chars(start, p_, n.d);
      if (r.ec == std::errc() && !std::isfinite(n.d)) return false;
    } else if (*start == '-') {
      n.kind = JsonNumber::Kind::signed_integer;
      r = std::from_chars(start, p_, n.i);
    } else {
      n.kind = JsonNumber::Kind::unsigned_integer;
      r = std::from_chars(start, p_, n.u);
    }
    if (r.ec != std::errc() || r.ptr != p_) return false;
    const auto size = out.size();
    out.resize(size + sizeof n);
    std::memcpy(out.data() + size, &n, sizeof n);
    return true;
  }

  const char* p_;
  const char* end_;
};

}  // namespace

Result<nlohmann::json> parse_infer_body(std::string_view text) {
  // parse_json's checks of the whole text hold for the text without the arrays (that is what
  // parse_json_object checks below) and for each array: it holds no NUL, and one that would
  // nest too deep is left in the text.
  auto found = Scanner(text).body();
  if (!found || found->empty()) return parse_json_object(text);
  // The text without the arrays (each a `0` in its place), which nlohmann reads in microseconds.
  std::string rest;
  const char* at = text.data();
  for (const auto& f : *found) {
    rest.append(at, f.begin);
    rest += '0';
    at = f.end;
  }
  rest.append(at, text.data() + text.size());
  auto body = parse_json_object(rest);
  if (!body) return body;  // invalid either way: see Scanner
  auto& inputs = (*body)["inputs"];
  for (auto& f : *found) {
    // Where the scan put each array, nlohmann must find the 0 that stands for it.
    if (!inputs.is_array() || f.input >= inputs.size() || !inputs[f.input].is_object()) {
      return parse_json_object(text);
    }
    auto& data = inputs[f.input]["data"];
    if (!data.is_number_unsigned() || data.get<std::uint64_t>() != 0) {
      return parse_json_object(text);
    }
    data = nlohmann::json::binary(std::move(f.numbers), kJsonNumbersSubtype);
  }
  return body;
}

}  // namespace respawn
