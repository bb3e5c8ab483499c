// Normalizers, pre-tokenizers, post-processors and decoders: see tokenizer_pipeline.hpp.
#include "tokenizer_pipeline.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>

#include "pcre_regex.hpp"
#include "respawn/tokenizer.hpp"
#include "respawn/utf8.hpp"
#include "unicode_text.hpp"

namespace respawn {

namespace {

using nlohmann::json;
using Ranges = std::vector<std::pair<std::size_t, std::size_t>>;

// ---- JSON access ---------------------------------------------------------------------------

std::string type_of(const json& j, const char* stage) {
  if (!j.is_object()) throw TokenizerError(std::string(stage) + " is not an object");
  const auto it = j.find("type");
  if (it == j.end() || !it->is_string()) {
    throw TokenizerError(std::string(stage) + " has no \"type\"");
  }
  return it->get<std::string>();
}

const json& field(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) throw TokenizerError(where + ": \"" + key + "\" is missing");
  return *it;
}

std::string string_field(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_string()) throw TokenizerError(where + ": \"" + key + "\" is not a string");
  return v.get<std::string>();
}

bool bool_field(const json& j, const char* key, bool fallback, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw TokenizerError(where + ": \"" + key + "\" is not a bool");
  return it->get<bool>();
}

char32_t char_field(const json& j, const char* key, const std::string& where) {
  const std::string s = string_field(j, key, where);
  std::size_t length = 0;
  if (s.empty() || !unicode::is_valid_utf8(s) ||
      (unicode::decode_utf8(s, 0, &length), length) != s.size()) {
    throw TokenizerError(where + ": \"" + key + "\" must be one character");
  }
  return unicode::decode_utf8(s, 0, &length);
}

std::string utf8_of(char32_t c) {
  std::string s;
  append_utf8(s, c);
  return s;
}

// ---- Patterns and split behaviours ---------------------------------------------------------

// A {"String": ...} (literal) or {"Regex": ...} pattern of Split, Replace.
class Pattern {
 public:
  Pattern(const json& j, const std::string& where) {
    if (j.is_object() && j.size() == 1 && j.contains("String") && j["String"].is_string()) {
      literal_ = j["String"].get<std::string>();
    } else if (j.is_object() && j.size() == 1 && j.contains("Regex") && j["Regex"].is_string()) {
      try {
        regex_ = std::make_unique<PcreRegex>(j["Regex"].get<std::string>());
      } catch (const std::invalid_argument& e) {
        throw TokenizerError(where + ": " + e.what());
      }
    } else {
      throw TokenizerError(where + ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
    }
  }

  Ranges find_all(std::string_view text) const {
    if (regex_) return regex_->find_all(text);
    Ranges out;
    if (literal_.empty()) return out;
    for (std::size_t at = text.find(literal_); at != std::string_view::npos;
         at = text.find(literal_, at + literal_.size())) {
      out.emplace_back(at, at + literal_.size());
    }
    return out;
  }

 private:
  std::string literal_;
  std::unique_ptr<PcreRegex> regex_;
};

// Each character for which `pred` holds is one match (tokenizers' Pattern for char and Fn).
template <typename Pred>
Ranges char_matches(std::string_view text, Pred pred) {
  Ranges out;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t length = 0;
    const char32_t c = unicode::decode_utf8(text, i, &length);
    if (pred(c)) out.emplace_back(i, i + length);
    i += length;
  }
  return out;
}

std::string replace_all(std::string_view text, const Ranges& matches, std::string_view content) {
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  std::size_t prev = 0;
  for (const auto& [start, end] : matches) {
    out.append(text.substr(prev, start - prev));
    out.append(content);
    prev = end;
  }
  out.append(text.substr(prev));
  return out;
}

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

Behavior behavior_of(const json& j, const std::string& where) {
  const std::string name = string_field(j, "behavior", where);
  if (name == "Removed") return Behavior::removed;
  if (name == "Isolated") return Behavior::isolated;
  if (name == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (name == "MergedWithNext") return Behavior::merged_with_next;
  if (name == "Contiguous") return Behavior::contiguous;
  throw TokenizerError(where + ": unknown behavior \"" + name + "\"");
}

// NormalizedString::split: the pieces of `piece` that the matches and the behaviour keep.
void split_piece(const TextPiece& piece, const Ranges& matches, Behavior behavior, bool invert,
                 std::vector<TextPiece>& out) {
  struct Segment {
    std::size_t start, end;
    bool match;
  };
  const std::string& text = piece.text;
  std::vector<Segment> segments;
  segments.reserve(matches.size() * 2 + 1);
  std::size_t prev = 0;
  for (const auto& [start, end] : matches) {
    if (prev != start) segments.push_back({prev, start, false});
    segments.push_back({start, end, true});
    prev = end;
  }
  if (prev != text.size()) segments.push_back({prev, text.size(), false});
  if (invert) {
    for (auto& s : segments) s.match = !s.match;
  }
  std::vector<Segment> kept;  // match here means "remove"
  kept.reserve(segments.size());
  bool previous_match = false;
  switch (behavior) {
    case Behavior::isolated:
      for (const auto& s : segments) kept.push_back({s.start, s.end, false});
      break;
    case Behavior::removed:
      kept = segments;
      break;
    case Behavior::contiguous:
      for (const auto& s : segments) {
        if (s.match == previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back({s.start, s.end, false});
        }
        previous_match = s.match;
      }
      break;
    case Behavior::merged_with_previous:
      for (const auto& s : segments) {
        if (s.match && !previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back({s.start, s.end, false});
        }
        previous_match = s.match;
      }
      break;
    case Behavior::merged_with_next:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->match && !previous_match && !kept.empty()) {
          kept.back().start = it->start;
        } else {
          kept.push_back({it->start, it->end, false});
        }
        previous_match = it->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const auto& s : kept) {
    if (s.match || s.end == s.start) continue;
    out.push_back({text.substr(s.start, s.end - s.start), piece.at_start && s.start == 0});
  }
}

template <typename FindMatches>
void split_all(std::vector<TextPiece>& pieces, Behavior behavior, bool invert,
               const FindMatches& find) {
  std::vector<TextPiece> out;
  out.reserve(pieces.size());
  for (const auto& piece : pieces) split_piece(piece, find(piece.text), behavior, invert, out);
  pieces = std::move(out);
}

// ---- Byte-level alphabet -------------------------------------------------------------------

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest for U+0100 onwards.
struct ByteAlphabet {
  std::array<std::string, 256> to_char;
  std::array<int, 324> to_byte;
  ByteAlphabet() {
    to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      const char32_t c =
          printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      to_char[b] = utf8_of(c);
      to_byte[c] = b;
    }
  }
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---- Normalizers ---------------------------------------------------------------------------

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(unicode::NormalForm form) : form_(form) {}
  std::string normalize(std::string text) const override { return unicode::normalize(text, form_); }

 private:
  unicode::NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  std::string normalize(std::string text) const override { return unicode::lowercase(text); }
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  std::string normalize(std::string text) const override {
    return text.empty() ? text : prepend_ + text;
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(const json& j, const std::string& where)
      : pattern_(field(j, "pattern", where), where), content_(string_field(j, "content", where)) {}
  std::string normalize(std::string text) const override {
    return replace_all(text, pattern_.find_all(text), content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string text) const override {
    std::size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        std::size_t length = 0;
        if (!unicode::is_whitespace(unicode::decode_utf8(text, begin, &length))) break;
        begin += length;
      }
    }
    if (right_) {
      while (end > begin) {
        std::size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        std::size_t length = 0;
        if (!unicode::is_whitespace(unicode::decode_utf8(text, start, &length))) break;
        end = start;
      }
    }
    return text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  std::string normalize(std::string text) const override {
    for (const auto& step : steps_) text = step->normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// ---- Pre-tokenizers ------------------------------------------------------------------------

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::make_unique<PcreRegex>(kGpt2Pattern) : nullptr) {}

  void pre_tokenize(std::vector<TextPiece>& pieces) const override {
    if (add_prefix_space_) {
      for (auto& piece : pieces) {
        if (piece.text.empty() || piece.text[0] != ' ') piece.text.insert(0, 1, ' ');
      }
    }
    if (regex_) {
      split_all(pieces, Behavior::isolated, false,
                [&](const std::string& text) { return regex_->find_all(text); });
    }
    const auto& alphabet = byte_alphabet();
    for (auto& piece : pieces) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (const char c : piece.text) mapped += alphabet.to_char[static_cast<unsigned char>(c)];
      piece.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<PcreRegex> regex_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(const json& j, const std::string& where)
      : pattern_(field(j, "pattern", where), where),
        behavior_(behavior_of(j, where)),
        invert_(bool_field(j, "invert", false, where)) {}

  void pre_tokenize(std::vector<TextPiece>& pieces) const override {
    split_all(pieces, behavior_, invert_,
              [&](const std::string& text) { return pattern_.find_all(text); });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void pre_tokenize(std::vector<TextPiece>& pieces) const override {
    split_all(pieces, individual_ ? Behavior::isolated : Behavior::contiguous, false,
              [](const std::string& text) { return char_matches(text, unicode::is_numeric); });
  }

 private:
  bool individual_;
};

class WhitespaceSplitPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<TextPiece>& pieces) const override {
    split_all(pieces, Behavior::removed, false,
              [](const std::string& text) { return char_matches(text, unicode::is_whitespace); });
  }
};

enum class PrependScheme { first, never, always };

PrependScheme prepend_scheme_of(const json& j, const std::string& where) {
  const auto it = j.find("prepend_scheme");
  if (it == j.end() || it->is_null()) {
    return bool_field(j, "add_prefix_space", true, where) ? PrependScheme::always
                                                          : PrependScheme::never;
  }
  const std::string name = it->is_string() ? it->get<std::string>() : "";
  if (name == "first") return PrependScheme::first;
  if (name == "never") return PrependScheme::never;
  if (name == "always") return PrependScheme::always;
  throw TokenizerError(where + ": unknown prepend_scheme " + it->dump());
}

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(const json& j, const std::string& where)
      : replacement_(char_field(j, "replacement", where)),
        str_rep_(utf8_of(replacement_)),
        scheme_(prepend_scheme_of(j, where)),
        split_(bool_field(j, "split", true, where)) {}

  void pre_tokenize(std::vector<TextPiece>& pieces) const override {
    for (auto& piece : pieces) {
      piece.text = replace_all(
          piece.text, char_matches(piece.text, [](char32_t c) { return c == ' '; }), str_rep_);
      const bool starts = piece.text.compare(0, str_rep_.size(), str_rep_) == 0;
      if (!starts && (scheme_ == PrependScheme::always ||
                      (scheme_ == PrependScheme::first && piece.at_start))) {
        piece.text.insert(0, str_rep_);
      }
    }
    if (split_) {
      const char32_t r = replacement_;
      split_all(pieces, Behavior::merged_with_next, false, [r](const std::string& text) {
        return char_matches(text, [r](char32_t c) { return c == r; });
      });
    }
  }

 private:
  char32_t replacement_;
  std::string str_rep_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<TextPiece>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// ---- Post-processors -----------------------------------------------------------------------

// TemplateProcessing's single template, or Roberta/Bert's fixed one: ids before and after.
class TemplatePostProcessor final : public PostProcessor {
 public:
  TemplatePostProcessor(std::vector<std::uint32_t> before, std::vector<std::uint32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<std::uint32_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }

 private:
  std::vector<std::uint32_t> before_, after_;
};

class SequencePostProcessor final : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> steps)
      : steps_(std::move(steps)) {}
  void process(std::vector<std::uint32_t>& ids, bool add_special_tokens) const override {
    for (const auto& step : steps_) step->process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

class NoOpPostProcessor final : public PostProcessor {
 public:
  void process(std::vector<std::uint32_t>&, bool) const override {}
};

std::unique_ptr<PostProcessor> make_template(const json& j, const std::string& where) {
  const json& single = field(j, "single", where);
  const json& specials = field(j, "special_tokens", where);
  if (!single.is_array() || !specials.is_object()) {
    throw TokenizerError(where + ": \"single\" must be a list and \"special_tokens\" an object");
  }
  std::vector<std::uint32_t> before, after;
  bool seen_sequence = false;
  for (const json& item : single) {
    if (item.is_object() && item.contains("Sequence")) {
      const json& seq = item["Sequence"];
      if (!seq.is_object() || seq.value("id", "") != "A" || seen_sequence) {
        throw TokenizerError(where + ": the single template must hold sequence $A exactly once");
      }
      seen_sequence = true;
    } else if (item.is_object() && item.contains("SpecialToken")) {
      const json& special = item["SpecialToken"];
      const std::string id = special.is_object() ? special.value("id", "") : "";
      const auto found = specials.find(id);
      if (found == specials.end() || !found->is_object() || !found->contains("ids") ||
          !(*found)["ids"].is_array()) {
        throw TokenizerError(where + ": special token \"" + id + "\" is not in special_tokens");
      }
      for (const json& n : (*found)["ids"]) {
        if (!n.is_number_integer() || n.get<std::int64_t>() < 0)
          throw TokenizerError(where + ": special token ids must be ids");
        (seen_sequence ? after : before).push_back(n.get<std::uint32_t>());
      }
    } else {
      throw TokenizerError(where + ": unknown template piece " + item.dump());
    }
  }
  if (!seen_sequence) throw TokenizerError(where + ": the single template has no $A");
  return std::make_unique<TemplatePostProcessor>(std::move(before), std::move(after));
}

std::uint32_t pair_id(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer() || v[1].get<std::int64_t>() < 0) {
    throw TokenizerError(where + ": \"" + key + "\" must be [token, id]");
  }
  return v[1].get<std::uint32_t>();
}

// ---- Decoders ------------------------------------------------------------------------------

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    const auto& alphabet = byte_alphabet();
    std::string bytes;
    for (const auto& token : tokens) {
      const std::size_t mark = bytes.size();
      bool all = true;
      for (std::size_t i = 0; i < token.size();) {
        std::size_t length = 0;
        const char32_t c = unicode::decode_utf8(token, i, &length);
        i += length;
        if (c >= alphabet.to_byte.size() || alphabet.to_byte[c] < 0) {
          all = false;
          break;
        }
        bytes += static_cast<char>(alphabet.to_byte[c]);
      }
      if (!all) {
        bytes.resize(mark);
        bytes += token;
      }
    }
    tokens.assign(1, unicode::to_valid_utf8(bytes));
  }
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    std::size_t pending_count = 0;
    const auto flush = [&] {
      if (pending_count == 0) return;
      if (unicode::is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (std::size_t k = 0; k < pending_count; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& token : tokens) {
      const int byte = byte_of(token);
      if (byte >= 0) {
        pending += static_cast<char>(byte);
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // <0xHH> -> HH (u8::from_str_radix over the two characters), else -1.
  static int byte_of(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
    if (token[3] == '+') return hex(token[4]);
    const int hi = hex(token[3]), lo = hex(token[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const auto& token : tokens) joined += token;
    tokens.assign(1, std::move(joined));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, std::size_t start, std::size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& token : tokens) {
      std::vector<std::pair<std::size_t, char32_t>> chars;  // byte offset, code point
      for (std::size_t i = 0; i < token.size();) {
        std::size_t length = 0;
        chars.emplace_back(i, unicode::decode_utf8(token, i, &length));
        i += length;
      }
      std::size_t start_cut = 0;
      for (std::size_t i = 0; i < std::min(start_, chars.size()); ++i) {
        if (chars[i].second != content_) break;
        start_cut = i + 1;
      }
      std::size_t stop_cut = chars.size();
      for (std::size_t i = 0; i < std::min(stop_, chars.size()); ++i) {
        const std::size_t index = chars.size() - i - 1;
        if (chars[index].second != content_) break;
        stop_cut = index;
      }
      if (stop_cut < start_cut) stop_cut = start_cut;
      const std::size_t from = start_cut < chars.size() ? chars[start_cut].first : token.size();
      const std::size_t to = stop_cut < chars.size() ? chars[stop_cut].first : token.size();
      token = token.substr(from, to - from);
    }
  }

 private:
  char32_t content_;
  std::size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(const json& j, const std::string& where)
      : pattern_(field(j, "pattern", where), where), content_(string_field(j, "content", where)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& token : tokens) token = replace_all(token, pattern_.find_all(token), content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(const json& j, const std::string& where)
      : replacement_(char_field(j, "replacement", where)), scheme_(prepend_scheme_of(j, where)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t k = 0; k < tokens.size(); ++k) {
      const bool drop = k == 0 && scheme_ != PrependScheme::never;
      std::string out;
      const std::string& token = tokens[k];
      for (std::size_t i = 0; i < token.size();) {
        std::size_t length = 0;
        const char32_t c = unicode::decode_utf8(token, i, &length);
        if (c != replacement_) {
          out.append(token, i, length);
        } else if (!drop) {
          out += ' ';
        }
        i += length;
      }
      tokens[k] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  PrependScheme scheme_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

template <typename Make>
auto make_all(const json& j, const char* key, const std::string& where, Make make) {
  const json& list = field(j, key, where);
  if (!list.is_array()) throw TokenizerError(where + ": \"" + key + "\" is not a list");
  std::vector<decltype(make(list[0]))> out;
  for (const json& item : list) {
    auto step = make(item);
    if (!step) throw TokenizerError(where + ": a step is null");
    out.push_back(std::move(step));
  }
  return out;
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, "normalizer");
  const std::string where = "normalizer " + type;
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::nfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::nfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::nfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::nfkd);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Prepend")
    return std::make_unique<PrependNormalizer>(string_field(j, "prepend", where));
  if (type == "Replace") return std::make_unique<ReplaceNormalizer>(j, where);
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(bool_field(j, "strip_left", false, where),
                                             bool_field(j, "strip_right", false, where));
  }
  if (type == "Sequence") {
    return std::make_unique<SequenceNormalizer>(make_all(j, "normalizers", where, make_normalizer));
  }
  throw TokenizerError("unsupported normalizer \"" + type + "\"");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, "pre_tokenizer");
  const std::string where = "pre_tokenizer " + type;
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(bool_field(j, "add_prefix_space", true, where),
                                                   bool_field(j, "use_regex", true, where));
  }
  if (type == "Split") return std::make_unique<SplitPreTokenizer>(j, where);
  if (type == "Digits") {
    return std::make_unique<DigitsPreTokenizer>(bool_field(j, "individual_digits", false, where));
  }
  if (type == "Metaspace") return std::make_unique<MetaspacePreTokenizer>(j, where);
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (type == "Sequence") {
    return std::make_unique<SequencePreTokenizer>(
        make_all(j, "pretokenizers", where, make_pre_tokenizer));
  }
  throw TokenizerError("unsupported pre_tokenizer \"" + type + "\"");
}

std::unique_ptr<PostProcessor> make_post_processor(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, "post_processor");
  const std::string where = "post_processor " + type;
  if (type == "TemplateProcessing") return make_template(j, where);
  if (type == "ByteLevel") return std::make_unique<NoOpPostProcessor>();  // offsets only
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    return std::make_unique<TemplatePostProcessor>(
        std::vector<std::uint32_t>{pair_id(j, "cls", where)},
        std::vector<std::uint32_t>{pair_id(j, "sep", where)});
  }
  if (type == "Sequence") {
    return std::make_unique<SequencePostProcessor>(
        make_all(j, "processors", where, make_post_processor));
  }
  throw TokenizerError("unsupported post_processor \"" + type + "\"");
}

std::unique_ptr<Decoder> make_decoder(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, "decoder");
  const std::string where = "decoder " + type;
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const json& start = field(j, "start", where);
    const json& stop = field(j, "stop", where);
    if (!start.is_number_integer() || !stop.is_number_integer() || start.get<std::int64_t>() < 0 ||
        stop.get<std::int64_t>() < 0) {
      throw TokenizerError(where + ": \"start\" and \"stop\" must be counts");
    }
    return std::make_unique<StripDecoder>(char_field(j, "content", where), start.get<std::size_t>(),
                                          stop.get<std::size_t>());
  }
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(j, where);
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(j, where);
  if (type == "Sequence") {
    return std::make_unique<SequenceDecoder>(make_all(j, "decoders", where, make_decoder));
  }
  throw TokenizerError("unsupported decoder \"" + type + "\"");
}

}  // namespace respawn
