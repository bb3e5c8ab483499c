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

namespace respawn {
namespace {

using nlohmann::json;

std::filesystem::path data_dir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "tokenizers";
}

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
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

std::string printable(const std::string& s) {
  return json(s).dump();
}

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
  const json& strings = references()["strings"];
  const json& cases = variant["cases"];
  ASSERT_EQ(strings.size(), cases.size());
  std::size_t agreeing = 0;
  for (std::size_t i = 0; i < strings.size(); ++i) {
    const std::string text = strings[i].get<std::string>();
    const json& expected = cases[i];
    const auto plain = tokenizer.encode(text, false);
    const auto with_special = tokenizer.encode(text, true);
    const auto want_plain = expected["plain"]["ids"].get<std::vector<std::uint32_t>>();
    const auto want_special = expected["with_special"]["ids"].get<std::vector<std::uint32_t>>();
    EXPECT_EQ(plain, want_plain) << "encode(" << printable(text) << ", false)";
    EXPECT_EQ(with_special, want_special) << "encode(" << printable(text) << ", true)";
    const std::string decoded = tokenizer.decode(want_plain);
    const std::string decoded_special = tokenizer.decode(want_special);
    const std::string decoded_skip = tokenizer.decode(want_special, true);
    EXPECT_EQ(decoded, expected["plain"]["decoded"].get<std::string>())
        << "decode of " << printable(text);
    EXPECT_EQ(decoded_special, expected["with_special"]["decoded"].get<std::string>())
        << "decode with special tokens of " << printable(text);
    EXPECT_EQ(decoded_skip, expected["decoded_skip_special"].get<std::string>())
        << "decode skipping special tokens of " << printable(text);
    if (plain == want_plain && with_special == want_special &&
        decoded == expected["plain"]["decoded"] &&
        decoded_special == expected["with_special"]["decoded"] &&
        decoded_skip == expected["decoded_skip_special"]) {
      ++agreeing;
    }
  }
  RecordProperty("agreeing", static_cast<int>(agreeing));
  std::printf("[ %-26s ] %zu/%zu strings agree\n", GetParam().c_str(), agreeing, strings.size());
}

INSTANTIATE_TEST_SUITE_P(Variants, TokenizerReference, ::testing::ValuesIn(kVariants),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace respawn
