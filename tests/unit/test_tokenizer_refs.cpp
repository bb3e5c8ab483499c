// Tests that respawn's tokenizer.json implementation (text/respawn/tokenizer.hpp) agrees with
// Hugging Face tokenizers: tests/data/tokenizers/references.json holds, for each pipeline
// variant and each test string, the library's ids with and without special tokens and its
// decodes (scripts/make_tokenizer_refs.py makes it).
#include "respawn/tokenizer.hpp"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer_references.hpp"

namespace respawn {
namespace {

using nlohmann::json;

using test::printable;
using test::read_json;

std::filesystem::path data_dir() {
  return test::tokenizer_data_dir();
}

const json& references() {
  static const json refs = read_json(data_dir() / "references.json");
  return refs;
}

// The variant's tokenizer.json: its base with the overridden top-level keys replaced.
json variant_config(const json& variant) {
  json config = read_json(data_dir() / variant["base"].get<std::string>() / "tokenizer.json");
  for (const auto& [key, value] : variant["overrides"].items()) {
    if (key == "model" && value == "ignore_merges") {
      config["model"]["ignore_merges"] = true;
    } else {
      config[key] = value;
    }
  }
  return config;
}

const std::vector<std::string> kVariants = {
    "gpt2",
    "gpt2_prefix_space",
    "gpt2_lowercase_nfkc",
    "gpt2_nfd_strip",
    "gpt2_digits",
    "gpt2_digit_runs",
    "gpt2_split_removed",
    "gpt2_split_merged_previous",
    "gpt2_split_merged_next",
    "gpt2_split_contiguous",
    "gpt2_split_inverted",
    "gpt2_split_inverted_removed",
    "gpt2_bos_eos",
    "qwen2",
    "qwen2_no_normalizer",
    "llama3",
    "llama3_ignore_merges",
    "sp_legacy",
    "sp_metaspace_first",
    "sp_metaspace_always_split",
    "sp_metaspace_never",
};

TEST(TokenizerReferences, TheTestCoversEveryVariantTheReferencesHold) {
  std::set<std::string> in_file;
  for (const auto& [name, variant] : references()["variants"].items()) in_file.insert(name);
  EXPECT_EQ(in_file, std::set<std::string>(kVariants.begin(), kVariants.end()));
  EXPECT_GE(references()["strings"].size(), 50u);
}

class TokenizerReference : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerReference, IdsAndDecodesAgreeWithHuggingFaceTokenizers) {
  const json& variant = references()["variants"][GetParam()];
  const Tokenizer tokenizer = Tokenizer::from_json(variant_config(variant));
  const std::size_t agreeing =
      test::expect_agreement(tokenizer, references()["strings"], variant["cases"], GetParam());
  RecordProperty("agreeing", static_cast<int>(agreeing));
}

INSTANTIATE_TEST_SUITE_P(Variants, TokenizerReference, ::testing::ValuesIn(kVariants),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace respawn
