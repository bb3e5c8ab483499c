// The tokenizer.json pipeline, and SentencePiece models (tokenizer_spm.cpp): see
// respawn/tokenizer.hpp.
#include "respawn/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "tokenizer_bpe.hpp"
#include "tokenizer_pipeline.hpp"
#include "tokenizer_spm.hpp"
#include "unicode_text.hpp"

namespace respawn {

namespace {

using nlohmann::json;

struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A part of the input: an added token already, or text still to tokenize.
struct Split {
  std::optional<std::uint32_t> id;
  std::size_t start, end;
};

// Added-token patterns matched leftmost-longest, as tokenizers' Aho-Corasick automaton does.
class AddedMatcher {
 public:
  void add(std::string pattern, std::uint32_t id) {
    if (pattern.empty()) return;
    patterns_.push_back({std::move(pattern), id});
  }
  void finish() {
    for (std::size_t k = 0; k < patterns_.size(); ++k) {
      by_first_byte_[static_cast<unsigned char>(patterns_[k].text[0])].push_back(k);
    }
    for (auto& bucket : by_first_byte_) {
      std::stable_sort(bucket.begin(), bucket.end(), [&](std::size_t a, std::size_t b) {
        return patterns_[a].text.size() > patterns_[b].text.size();
      });
    }
  }
  bool empty() const { return patterns_.empty(); }

  // The first match at or after `from`: {start, end, id}.
  bool find(std::string_view s, std::size_t from, std::size_t* start, std::size_t* end,
            std::uint32_t* id) const {
    for (std::size_t i = from; i < s.size(); ++i) {
      for (const std::size_t k : by_first_byte_[static_cast<unsigned char>(s[i])]) {
        const std::string& text = patterns_[k].text;
        if (s.compare(i, text.size(), text) == 0) {
          *start = i;
          *end = i + text.size();
          *id = patterns_[k].id;
          return true;
        }
      }
    }
    return false;
  }

 private:
  struct Entry {
    std::string text;
    std::uint32_t id;
  };
  std::vector<Entry> patterns_;
  std::array<std::vector<std::size_t>, 256> by_first_byte_;
};

char32_t last_char(std::string_view s) {
  std::size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  std::size_t length = 0;
  return unicode::decode_utf8(s, start, &length);
}

}  // namespace

struct Tokenizer::Impl {
  // A SentencePiece tokenizer.model: when set, it does everything and the rest is empty.
  std::unique_ptr<SentencePieceModel> sentencepiece;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  std::map<std::uint32_t, AddedToken> added;  // by id
  std::unordered_map<std::string, std::uint32_t> added_ids;
  std::set<std::string> special_contents;
  AddedMatcher raw_matcher;         // normalized == false: matched on the input as it is
  AddedMatcher normalized_matcher;  // normalized == true: matched after the normalizer

  // AddedVocabulary::find_matches.
  std::vector<Split> find_matches(std::string_view s, const AddedMatcher& matcher) const {
    std::vector<Split> splits;
    if (s.empty()) return splits;
    if (matcher.empty()) {
      splits.push_back({std::nullopt, 0, s.size()});
      return splits;
    }
    std::size_t start_offset = 0, from = 0, start = 0, stop = 0;
    std::uint32_t id = 0;
    while (from < s.size() && matcher.find(s, from, &start, &stop, &id)) {
      from = stop;
      const AddedToken& token = added.at(id);
      if (token.single_word) {
        const bool start_space =
            start == 0 || !unicode::is_word_char(last_char(s.substr(0, start)));
        std::size_t length = 0;
        const bool stop_space =
            stop == s.size() || !unicode::is_word_char(unicode::decode_utf8(s, stop, &length));
        if (!start_space || !stop_space) continue;
      }
      if (token.lstrip) {
        std::size_t new_start = start;
        while (new_start > 0) {
          std::size_t begin = new_start - 1;
          while (begin > 0 && (static_cast<unsigned char>(s[begin]) & 0xC0) == 0x80) --begin;
          std::size_t length = 0;
          if (!unicode::is_whitespace(unicode::decode_utf8(s, begin, &length))) break;
          new_start = begin;
        }
        start = std::max(new_start, start_offset);
      }
      if (token.rstrip) {
        while (stop < s.size()) {
          std::size_t length = 0;
          if (!unicode::is_whitespace(unicode::decode_utf8(s, stop, &length))) break;
          stop += length;
        }
      }
      if (start_offset < start) splits.push_back({std::nullopt, start_offset, start});
      splits.push_back({id, start, stop});
      start_offset = stop;
    }
    if (start_offset != s.size()) splits.push_back({std::nullopt, start_offset, s.size()});
    return splits;
  }

  void tokenize_piece(TextPiece piece, std::vector<std::uint32_t>& ids) const {
    if (!pre_tokenizer) {
      model->tokenize(piece.text, ids);
      return;
    }
    std::vector<TextPiece> words;
    words.push_back(std::move(piece));
    pre_tokenizer->pre_tokenize(words);
    for (const auto& word : words) model->tokenize(word.text, ids);
  }
};

Tokenizer Tokenizer::from_json(const json& config) {
  if (!config.is_object()) throw TokenizerError("tokenizer.json is not an object");
  if (const auto it = config.find("version");
      it != config.end() && !(it->is_string() && it->get<std::string>() == "1.0")) {
    throw TokenizerError("unknown tokenizer.json version " + it->dump());
  }
  for (const char* key : {"truncation", "padding"}) {
    if (const auto it = config.find(key); it != config.end() && !it->is_null()) {
      throw TokenizerError(std::string("\"") + key +
                           "\" is not supported (set it to null: callers truncate and pad)");
    }
  }
  auto impl = std::make_shared<Impl>();
  const auto model = config.find("model");
  if (model == config.end() || !model->is_object()) throw TokenizerError("\"model\" is missing");
  const auto type = model->find("type");
  if (type != model->end() && !(type->is_string() && type->get<std::string>() == "BPE")) {
    throw TokenizerError("unsupported model " + type->dump() + " (only BPE is)");
  }
  impl->model = std::make_unique<BpeModel>(*model);
  const auto stage = [&](const char* key) -> const json& {
    static const json null;
    const auto it = config.find(key);
    return it == config.end() ? null : *it;
  };
  impl->normalizer = make_normalizer(stage("normalizer"));
  impl->pre_tokenizer = make_pre_tokenizer(stage("pre_tokenizer"));
  impl->post_processor = make_post_processor(stage("post_processor"));
  impl->decoder = make_decoder(stage("decoder"));

  // AddedVocabulary::add_tokens over the file's list: an id from the added tokens or the vocab
  // when the content has one, else the next after the vocab (the file's "id" only warns there).
  const json& added = stage("added_tokens");
  if (!added.is_null() && !added.is_array()) throw TokenizerError("\"added_tokens\" is not a list");
  std::uint32_t next_id = static_cast<std::uint32_t>(impl->model->size());
  for (const json& item : added.is_array() ? added : json::array()) {
    if (!item.is_object() || !item.contains("content") || !item["content"].is_string()) {
      throw TokenizerError("an added token has no \"content\"");
    }
    AddedToken token;
    token.content = item["content"].get<std::string>();
    if (token.content.empty()) continue;
    const auto flag = [&](const char* key, bool fallback) {
      const auto it = item.find(key);
      if (it == item.end() || it->is_null()) return fallback;
      if (!it->is_boolean())
        throw TokenizerError(std::string("added token: \"") + key + "\" is not a bool");
      return it->get<bool>();
    };
    token.single_word = flag("single_word", false);
    token.lstrip = flag("lstrip", false);
    token.rstrip = flag("rstrip", false);
    token.special = flag("special", false);
    token.normalized = flag("normalized", !token.special);
    std::uint32_t id;
    if (const auto known = impl->added_ids.find(token.content); known != impl->added_ids.end()) {
      id = known->second;
    } else if (const auto in_vocab = impl->model->token_to_id(token.content)) {
      id = *in_vocab;
    } else {
      id = next_id++;
    }
    impl->added_ids[token.content] = id;
    if (token.special) impl->special_contents.insert(token.content);
    impl->added.insert_or_assign(id, std::move(token));
  }
  for (const auto& [id, token] : impl->added) {
    if (token.normalized) {
      impl->normalized_matcher.add(
          impl->normalizer ? impl->normalizer->normalize(token.content) : token.content, id);
    } else {
      impl->raw_matcher.add(token.content, id);
    }
  }
  impl->raw_matcher.finish();
  impl->normalized_matcher.finish();
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_json_text(std::string_view text) {
  json config = json::parse(text.begin(), text.end(), nullptr, false);
  if (config.is_discarded()) throw TokenizerError("tokenizer.json is not valid JSON");
  return from_json(config);
}

Tokenizer Tokenizer::from_sentencepiece(std::string_view model) {
  auto impl = std::make_shared<Impl>();
  impl->sentencepiece = std::make_unique<SentencePieceModel>(model);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError("cannot open " + path);
  std::ostringstream read;
  read << in.rdbuf();
  if (in.bad()) throw TokenizerError("cannot read " + path);
  const std::string text = read.str();
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    throw TokenizerError(path + ": empty (neither a tokenizer.json nor a SentencePiece model)");
  }
  // A tokenizer.json is a JSON object: '{' after any whitespace. A tokenizer.model is a
  // serialized ModelProto, which starts with the tag of its first piece (0x0A, which is also
  // '\n', so a model whose first piece's length byte is whitespace and whose text starts with
  // '{' looks like JSON: it is read as a model when it does not parse as JSON).
  try {
    if (text[first] == '{') {
      json config = json::parse(text.begin(), text.end(), nullptr, false);
      if (!config.is_discarded()) return from_json(config);
      if (text[0] != '\x0A') throw TokenizerError("tokenizer.json is not valid JSON");
      try {
        return from_sentencepiece(text);
      } catch (const TokenizerError&) {
        throw TokenizerError("tokenizer.json is not valid JSON");
      }
    }
  } catch (const TokenizerError& e) {
    throw TokenizerError(path + ": " + e.what());
  }
  try {
    return from_sentencepiece(text);
  } catch (const TokenizerError& e) {
    throw TokenizerError(path + ": " + e.what() +
                         " (a tokenizer.json starts with '{'; any other file is read as a "
                         "SentencePiece tokenizer.model)");
  }
}

std::vector<std::uint32_t> Tokenizer::encode(std::string_view input,
                                             bool add_special_tokens) const {
  const Impl& impl = *impl_;
  std::string repaired;
  if (!unicode::is_valid_utf8(input)) {
    repaired = unicode::to_valid_utf8(input);
    input = repaired;
  }
  if (impl.sentencepiece) return impl.sentencepiece->encode(input, add_special_tokens);
  std::vector<std::uint32_t> ids;
  for (const Split& raw : impl.find_matches(input, impl.raw_matcher)) {
    if (raw.id) {
      ids.push_back(*raw.id);
      continue;
    }
    std::string normalized(input.substr(raw.start, raw.end - raw.start));
    if (impl.normalizer) normalized = impl.normalizer->normalize(std::move(normalized));
    for (const Split& part : impl.find_matches(normalized, impl.normalized_matcher)) {
      if (part.id) {
        ids.push_back(*part.id);
      } else if (part.end > part.start) {
        impl.tokenize_piece({normalized.substr(part.start, part.end - part.start),
                             raw.start == 0 && part.start == 0},
                            ids);
      }
    }
  }
  if (impl.post_processor) impl.post_processor->process(ids, add_special_tokens);
  return ids;
}

std::string Tokenizer::decode(const std::vector<std::uint32_t>& ids,
                              bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  if (impl.sentencepiece) return impl.sentencepiece->decode(ids, skip_special_tokens);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const std::uint32_t id : ids) {
    const std::string* token = nullptr;
    if (const auto added = impl.added.find(id); added != impl.added.end()) {
      token = &added->second.content;
    } else {
      token = impl.model->id_to_token(id);
    }
    if (token == nullptr) continue;
    if (skip_special_tokens && impl.special_contents.count(*token)) continue;
    tokens.push_back(*token);
  }
  std::string out;
  if (impl.decoder) {
    impl.decoder->decode_chain(tokens);
    for (const auto& token : tokens) out += token;
  } else {
    for (std::size_t k = 0; k < tokens.size(); ++k) {
      if (k > 0) out += ' ';
      out += tokens[k];
    }
  }
  return out;
}

std::optional<std::uint32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (impl_->sentencepiece) return impl_->sentencepiece->piece_to_id(token);
  if (const auto it = impl_->added_ids.find(std::string(token)); it != impl_->added_ids.end()) {
    return it->second;
  }
  return impl_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(std::uint32_t id) const {
  if (impl_->sentencepiece) return impl_->sentencepiece->id_to_piece(id);
  if (const auto it = impl_->added.find(id); it != impl_->added.end()) return it->second.content;
  if (const std::string* token = impl_->model->id_to_token(id)) return *token;
  return std::nullopt;
}

bool Tokenizer::is_special(std::uint32_t id) const {
  if (impl_->sentencepiece) return impl_->sentencepiece->is_special(id);
  const auto it = impl_->added.find(id);
  return it != impl_->added.end() && it->second.special;
}

std::size_t Tokenizer::vocab_size() const {
  if (impl_->sentencepiece) return impl_->sentencepiece->size();
  std::size_t size = impl_->model->id_bound();
  if (!impl_->added.empty()) size = std::max<std::size_t>(size, impl_->added.rbegin()->first + 1);
  return size;
}

}  // namespace respawn
