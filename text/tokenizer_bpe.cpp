// BPE model: see tokenizer_bpe.hpp.
#include "tokenizer_bpe.hpp"

#include <cstdio>
#include <mutex>
#include <queue>

#include "respawn/tokenizer.hpp"
#include "unicode_text.hpp"

namespace respawn {

namespace {

// tokenizers' cache: DEFAULT_CACHE_CAPACITY entries, words shorter than MAX_LENGTH bytes.
constexpr std::size_t kCacheCapacity = 10000;
constexpr std::size_t kCacheMaxWordBytes = 256;

std::string optional_string(const nlohmann::json& model, const char* key) {
  const auto it = model.find(key);
  if (it == model.end() || it->is_null()) return {};
  if (!it->is_string())
    throw TokenizerError(std::string("BPE model: \"") + key + "\" is not a string");
  return it->get<std::string>();
}

bool optional_bool(const nlohmann::json& model, const char* key) {
  const auto it = model.find(key);
  if (it == model.end() || it->is_null()) return false;
  if (!it->is_boolean())
    throw TokenizerError(std::string("BPE model: \"") + key + "\" is not a bool");
  return it->get<bool>();
}

std::string byte_token(unsigned b) {
  char name[8];
  std::snprintf(name, sizeof name, "<0x%02X>", b);
  return name;
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& model) {
  if (const auto it = model.find("dropout");
      it != model.end() && !it->is_null() && !(it->is_number() && it->get<double>() == 0.0)) {
    throw TokenizerError("BPE model: dropout is not supported (it makes ids random)");
  }
  const auto vocab = model.find("vocab");
  const auto merges = model.find("merges");
  if (vocab == model.end() || !vocab->is_object() || merges == model.end() || !merges->is_array()) {
    throw TokenizerError("BPE model: \"vocab\" (an object) and \"merges\" (a list) are required");
  }
  std::uint32_t max_id = 0;
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
        id.get<std::int64_t>() > std::int64_t{UINT32_MAX} - 1) {
      throw TokenizerError("BPE model: the id of \"" + token + "\" is not a valid id");
    }
    max_id = std::max(max_id, id.get<std::uint32_t>());
  }
  tokens_.resize(vocab->empty() ? 0 : max_id + std::size_t{1});
  has_id_.resize(tokens_.size());
  for (const auto& [token, id] : vocab->items()) {
    const auto i = id.get<std::uint32_t>();
    if (has_id_[i]) throw TokenizerError("BPE model: id " + std::to_string(i) + " is given twice");
    tokens_[i] = token;
    has_id_[i] = true;
  }
  vocab_.reserve(vocab->size());
  for (std::uint32_t i = 0; i < tokens_.size(); ++i) {
    if (has_id_[i]) vocab_.emplace(tokens_[i], i);
  }

  if (const auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
    if (!it->is_string()) throw TokenizerError("BPE model: \"unk_token\" is not a string");
    unk_token_ = it->get<std::string>();
  }
  continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix");
  end_of_word_suffix_ = optional_string(model, "end_of_word_suffix");
  fuse_unk_ = optional_bool(model, "fuse_unk");
  byte_fallback_ = optional_bool(model, "byte_fallback");
  ignore_merges_ = optional_bool(model, "ignore_merges");

  const auto id_of = [&](const std::string& token) {
    const auto found = vocab_.find(token);
    if (found == vocab_.end()) {
      throw TokenizerError("BPE model: merge token \"" + token + "\" is not in the vocab");
    }
    return found->second;
  };
  merges_.reserve(merges->size());
  std::uint32_t rank = 0;
  for (const auto& merge : *merges) {
    std::string a, b;
    if (merge.is_string()) {
      const auto& line = merge.get_ref<const std::string&>();
      if (line.rfind("#version", 0) == 0) continue;
      const auto space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        throw TokenizerError("BPE model: merge " + std::to_string(rank + 1) +
                             " is not two tokens separated by one space");
      }
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      a = merge[0].get<std::string>();
      b = merge[1].get<std::string>();
    } else {
      throw TokenizerError("BPE model: merge " + std::to_string(rank + 1) +
                           " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const std::size_t prefix = continuing_subword_prefix_.size();
    if (b.compare(0, prefix, continuing_subword_prefix_) != 0 && prefix > 0) {
      throw TokenizerError("BPE model: merge \"" + a + " " + b +
                           "\" lacks the continuing_subword_prefix");
    }
    const std::uint32_t a_id = id_of(a), b_id = id_of(b);
    const std::uint32_t new_id = id_of(a + b.substr(prefix));
    // A pair given twice keeps its last rank, as tokenizers' HashMap collect does.
    merges_.insert_or_assign(pair_key(a_id, b_id), Merge{rank, new_id});
    ++rank;
  }

  has_all_byte_tokens_ = true;
  for (unsigned b = 0; b < 256; ++b) {
    const auto found = vocab_.find(byte_token(b));
    if (found == vocab_.end()) {
      has_all_byte_tokens_ = false;
    } else {
      byte_ids_[b] = found->second;
    }
  }
}

std::optional<std::uint32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto found = vocab_.find(token);
  if (found == vocab_.end()) return std::nullopt;
  return found->second;
}

const std::string* BpeModel::id_to_token(std::uint32_t id) const {
  return id < tokens_.size() && has_id_[id] ? &tokens_[id] : nullptr;
}

void BpeModel::tokenize(std::string_view word, std::vector<std::uint32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto found = vocab_.find(word); found != vocab_.end()) {
      out.push_back(found->second);
      return;
    }
  }
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    if (const auto hit = cache_.find(std::string(word)); hit != cache_.end()) {
      out.insert(out.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  std::vector<std::uint32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::move(ids));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<std::uint32_t>& ids) const {
  // The symbols, as tokenizers' merge_word builds them: one per character (with the subword
  // prefix / word suffix), else its <0xXX> byte tokens, else unk (fused when fuse_unk).
  std::vector<std::uint32_t> symbols;
  symbols.reserve(word.size());
  std::optional<std::uint32_t> unk;  // a pending unk, added before the next known symbol
  std::string scratch;
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t length = unicode::utf8_length(static_cast<unsigned char>(word[i]));
    const bool first = i == 0, last = i + length >= word.size();
    std::string_view piece = word.substr(i, length);
    i += length;
    if ((!first && !continuing_subword_prefix_.empty()) || (last && !end_of_word_suffix_.empty())) {
      scratch.clear();
      if (!first) scratch += continuing_subword_prefix_;
      scratch += piece;
      if (last) scratch += end_of_word_suffix_;
      piece = scratch;
    }
    if (const auto found = vocab_.find(piece); found != vocab_.end()) {
      if (unk) symbols.push_back(*unk);
      unk.reset();
      symbols.push_back(found->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (const char c : piece) {
        if (!has_all_byte_tokens_ && !vocab_.count(byte_token(static_cast<unsigned char>(c)))) {
          all = false;
        }
      }
      if (all) {
        for (const char c : piece) {
          const auto b = static_cast<unsigned char>(c);
          symbols.push_back(has_all_byte_tokens_ ? byte_ids_[b]
                                                 : vocab_.find(byte_token(b))->second);
        }
        continue;
      }
    }
    if (unk_token_) {
      const auto unk_id = vocab_.find(*unk_token_);
      if (unk_id == vocab_.end()) {
        throw TokenizerError("BPE model: unk_token \"" + *unk_token_ + "\" is not in the vocab");
      }
      if (unk && !fuse_unk_) symbols.push_back(*unk);
      if (!unk || !fuse_unk_) unk = unk_id->second;
    }
  }
  if (unk) symbols.push_back(*unk);

  const std::size_t n = symbols.size();
  if (n < 2) {
    ids = std::move(symbols);
    return;
  }
  // Word::merge_all: a heap of candidate merges, lowest rank first, then leftmost; an entry is
  // stale when its left symbol was merged away or the pair there no longer makes new_id.
  std::vector<std::int32_t> prev(n), next(n);
  std::vector<bool> removed(n, false);
  for (std::size_t k = 0; k < n; ++k) {
    prev[k] = static_cast<std::int32_t>(k) - 1;
    next[k] = k + 1 < n ? static_cast<std::int32_t>(k + 1) : -1;
  }
  struct Candidate {
    std::uint32_t rank;
    std::uint32_t pos;
    std::uint32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto find_merge = [&](std::uint32_t a, std::uint32_t b) -> const Merge* {
    const auto found = merges_.find(pair_key(a, b));
    return found == merges_.end() ? nullptr : &found->second;
  };
  for (std::size_t k = 0; k + 1 < n; ++k) {
    if (const Merge* m = find_merge(symbols[k], symbols[k + 1])) {
      queue.push({m->rank, static_cast<std::uint32_t>(k), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    if (removed[top.pos] || next[top.pos] < 0) continue;
    const auto right = static_cast<std::uint32_t>(next[top.pos]);
    const Merge* current = find_merge(symbols[top.pos], symbols[right]);
    if (current == nullptr || current->new_id != top.new_id) continue;
    symbols[top.pos] = top.new_id;
    removed[right] = true;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = static_cast<std::int32_t>(top.pos);
    if (prev[top.pos] >= 0) {
      const auto left = static_cast<std::uint32_t>(prev[top.pos]);
      if (const Merge* m = find_merge(symbols[left], symbols[top.pos])) {
        queue.push({m->rank, left, m->new_id});
      }
    }
    if (next[top.pos] >= 0) {
      if (const Merge* m = find_merge(symbols[top.pos], symbols[next[top.pos]])) {
        queue.push({m->rank, top.pos, m->new_id});
      }
    }
  }
  ids.clear();
  for (std::size_t k = 0; k < n; ++k) {
    if (!removed[k]) ids.push_back(symbols[k]);
  }
}

}  // namespace respawn
