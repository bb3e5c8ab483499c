#pragma once
// The BPE model of a Hugging Face tokenizer.json (internal to respawn_text): vocab, merges in
// both file formats, unk_token/fuse_unk, byte_fallback (<0xXX> tokens), ignore_merges,
// continuing_subword_prefix and end_of_word_suffix, merging exactly as tokenizers' Word::merge_all
// does (lowest rank first, leftmost among equals), with a bounded cache of word -> ids.
// Thread-safety: immutable after load except the cache, which a shared mutex guards; any number
// of threads may tokenize at once.
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace respawn {

class BpeModel {
 public:
  // From the "model" object; throws TokenizerError naming what is missing or unsupported.
  explicit BpeModel(const nlohmann::json& model);

  // Appends the ids of one pre-tokenized word (no-op for an empty one).
  void tokenize(std::string_view word, std::vector<std::uint32_t>& out) const;

  std::optional<std::uint32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(std::uint32_t id) const;  // nullptr when unknown
  // Entries in the vocab (tokenizers' get_vocab_size of the model).
  std::size_t size() const { return vocab_.size(); }
  // One past the highest id in the vocab.
  std::size_t id_bound() const { return tokens_.size(); }

 private:
  struct Merge {
    std::uint32_t rank;
    std::uint32_t new_id;
  };
  static std::uint64_t pair_key(std::uint32_t a, std::uint32_t b) {
    return (static_cast<std::uint64_t>(a) << 32) | b;
  }
  void merge_word(std::string_view word, std::vector<std::uint32_t>& ids) const;

  std::vector<std::string> tokens_;  // by id; the vocab's keys point into it
  std::vector<bool> has_id_;
  std::unordered_map<std::string_view, std::uint32_t> vocab_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  std::optional<std::string> unk_token_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::uint32_t byte_ids_[256] = {};
  bool has_all_byte_tokens_ = false;

  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<std::uint32_t>> cache_;
};

}  // namespace respawn
