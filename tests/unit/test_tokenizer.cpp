// Tests for the tokenizer.json implementation (text/respawn/tokenizer.hpp) on small hand-made
// tokenizers: what is refused at load and how, the BPE model's options, added-token matching,
// decoders, invalid input and concurrent use. Agreement with Hugging Face tokenizers on trained
// tokenizers is test_tokenizer_refs.cpp's.
#include "respawn/tokenizer.hpp"

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pcre_regex.hpp"
#include "unicode_text.hpp"

namespace respawn {
namespace {

using nlohmann::json;
using Ids = std::vector<std::uint32_t>;

// A character-level BPE over "a b c d" plus "ab", "abc", "cd", "<unk>" and the byte tokens of
// "\n" and "é" (0xC3 0xA9), with whitespace split off.
json small_config() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [],
    "normalizer": null,
    "pre_tokenizer": {"type": "WhitespaceSplit"},
    "post_processor": null,
    "decoder": null,
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": false,
              "byte_fallback": false, "ignore_merges": false,
              "continuing_subword_prefix": null, "end_of_word_suffix": null,
              "vocab": {"<unk>": 0, "a": 1, "b": 2, "c": 3, "d": 4, "ab": 5, "abc": 6, "cd": 7,
                        "<0x0A>": 8, "<0xC3>": 9, "<0xA9>": 10, "<s>": 11},
              "merges": ["a b", "ab c", "c d"]}
  })");
}

std::string load_error(const json& config) {
  try {
    Tokenizer::from_json(config);
  } catch (const TokenizerError& e) {
    return e.what();
  }
  return "(loaded)";
}

TEST(Tokenizer, MergesApplyLowestRankFirst) {
  const Tokenizer t = Tokenizer::from_json(small_config());
  EXPECT_EQ(t.encode("abcd", false), (Ids{6, 4}));  // a b -> ab, ab c -> abc; cd never forms
  EXPECT_EQ(t.encode("cd ab", false), (Ids{7, 5}));
  EXPECT_EQ(t.encode("", false), Ids{});
}

TEST(Tokenizer, MergesAsPairsGiveTheSameIdsAsMergesAsStrings) {
  json pairs = small_config();
  pairs["model"]["merges"] = json::parse(R"([["a", "b"], ["ab", "c"], ["c", "d"]])");
  const Tokenizer strings = Tokenizer::from_json(small_config());
  const Tokenizer tuples = Tokenizer::from_json(pairs);
  for (const char* text : {"abcd", "dcba", "abab cd", "aabbccdd"}) {
    EXPECT_EQ(strings.encode(text, false), tuples.encode(text, false)) << text;
  }
}

TEST(Tokenizer, UnknownCharactersBecomeUnkFusedOnlyWhenAsked) {
  json config = small_config();
  EXPECT_EQ(Tokenizer::from_json(config).encode("xyab", false), (Ids{0, 0, 5}));
  config["model"]["fuse_unk"] = true;
  EXPECT_EQ(Tokenizer::from_json(config).encode("xyab", false), (Ids{0, 5}));
  config["model"]["unk_token"] = nullptr;
  EXPECT_EQ(Tokenizer::from_json(config).encode("xyab", false), (Ids{5}));
}

TEST(Tokenizer, ByteFallbackUsesByteTokensWhenAllOfACharactersBytesExist) {
  json config = small_config();
  config["model"]["byte_fallback"] = true;
  config["pre_tokenizer"] = nullptr;
  const Tokenizer t = Tokenizer::from_json(config);
  EXPECT_EQ(t.encode("a\xC3\xA9\nb", false), (Ids{1, 9, 10, 8, 2}));
  EXPECT_EQ(t.encode("x", false), (Ids{0}));  // <0x78> is not in the vocab: unk
}

TEST(Tokenizer, IgnoreMergesTakesAWholeWordFromTheVocab) {
  json config = small_config();
  config["model"]["merges"] = json::array({"a b"});
  config["model"]["vocab"]["bcd"] = 12;
  EXPECT_EQ(Tokenizer::from_json(config).encode("bcd", false), (Ids{2, 3, 4}));
  config["model"]["ignore_merges"] = true;
  EXPECT_EQ(Tokenizer::from_json(config).encode("bcd", false), (Ids{12}));
}

TEST(Tokenizer, ContinuingSubwordPrefixAndEndOfWordSuffixNameTheSymbols) {
  json config = small_config();
  config["model"]["vocab"] =
      json::parse(R"({"a": 0, "##b": 1, "##c</w>": 2, "ab": 3, "c</w>": 4, "abc</w>": 5})");
  config["model"]["unk_token"] = nullptr;
  config["model"]["continuing_subword_prefix"] = "##";
  config["model"]["end_of_word_suffix"] = "</w>";
  config["model"]["merges"] = json::array({"a ##b", "ab ##c</w>"});
  const Tokenizer t = Tokenizer::from_json(config);
  // a ##b -> ab, ab ##c</w> -> abc</w> (the merged token drops the prefix); "c" alone: c</w>.
  EXPECT_EQ(t.encode("abc c", false), (Ids{5, 4}));
}

TEST(Tokenizer, AddedTokensAreMatchedBeforeTheModelWithTheirFlags) {
  json config = small_config();
  config["added_tokens"] = json::parse(R"([
    {"id": 11, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
     "normalized": false, "special": true},
    {"id": 12, "content": "[L]", "single_word": false, "lstrip": true, "rstrip": false,
     "normalized": false, "special": false},
    {"id": 13, "content": "[R]", "single_word": false, "lstrip": false, "rstrip": true,
     "normalized": false, "special": false},
    {"id": 14, "content": "cab", "single_word": true, "lstrip": false, "rstrip": false,
     "normalized": true, "special": false}
  ])");
  config["pre_tokenizer"] = nullptr;  // so that spaces reach the model (as <unk>)
  const Tokenizer t = Tokenizer::from_json(config);
  EXPECT_EQ(t.encode("ab<s>ab", false), (Ids{5, 11, 5}));
  EXPECT_EQ(t.encode("a  [L]b", false), (Ids{1, 12, 2}));        // lstrip eats the spaces before
  EXPECT_EQ(t.encode("a[R]  b", false), (Ids{1, 13, 2}));        // rstrip eats the spaces after
  EXPECT_EQ(t.encode("a cab b", false), (Ids{1, 0, 14, 0, 2}));  // a word of its own
  EXPECT_EQ(t.encode("acab", false), (Ids{1, 3, 5}));            // inside a word: not matched
  EXPECT_EQ(t.token_to_id("[R]"), 13u);
  EXPECT_EQ(t.id_to_token(14), "cab");
  EXPECT_TRUE(t.is_special(11));
  EXPECT_FALSE(t.is_special(12));
  EXPECT_EQ(t.vocab_size(), 15u);
}

TEST(Tokenizer, NormalizedAddedTokensAreMatchedInTheNormalizedText) {
  json config = small_config();
  config["normalizer"] = json::parse(R"({"type": "Lowercase"})");
  config["added_tokens"] = json::parse(R"([{"id": 12, "content": "DAB", "single_word": false,
      "lstrip": false, "rstrip": false, "normalized": true, "special": false}])");
  const Tokenizer t = Tokenizer::from_json(config);
  EXPECT_EQ(t.encode("aDaBc", false), (Ids{1, 12, 3}));
}

TEST(Tokenizer, TemplateProcessingAddsBosAndEosOnlyWithSpecialTokens) {
  json config = small_config();
  config["post_processor"] = json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}}],
      "pair": [],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [11], "tokens": ["<s>"]},
                         "</s>": {"id": "</s>", "ids": [0], "tokens": ["</s>"]}}})");
  const Tokenizer t = Tokenizer::from_json(config);
  EXPECT_EQ(t.encode("ab", true), (Ids{11, 5, 0}));
  EXPECT_EQ(t.encode("ab", false), (Ids{5}));
  EXPECT_EQ(t.encode("", true), (Ids{11, 0}));
}

TEST(Tokenizer, DecodeWithoutADecoderJoinsTokensWithSpacesAndSkipsUnknownIds) {
  const Tokenizer t = Tokenizer::from_json(small_config());
  EXPECT_EQ(t.decode({5, 3, 999, 7}), "ab c cd");
}

TEST(Tokenizer, ByteLevelDecoderRepairsInvalidUtf8) {
  json config = small_config();
  config["decoder"] = json::parse(R"({"type": "ByteLevel"})");
  config["model"]["vocab"] = json::parse(R"({"Ã": 0, "©": 1, "Ġ": 2, "x": 3})");
  config["model"]["merges"] = json::array();
  config["model"]["unk_token"] = nullptr;
  const Tokenizer t = Tokenizer::from_json(config);
  EXPECT_EQ(t.decode({2, 0, 1, 3}),
            " \xC3\xA9x");                       // Ġ is the space, Ã© the bytes of é
  EXPECT_EQ(t.decode({0, 3}), "\xEF\xBF\xBDx");  // a lone lead byte: U+FFFD
}

TEST(Tokenizer, InvalidUtf8InputIsReadAsReplacementCharacters) {
  json config = small_config();
  config["model"]["byte_fallback"] = true;
  config["model"]["vocab"]["<0xEF>"] = 12;
  config["model"]["vocab"]["<0xBF>"] = 13;
  config["model"]["vocab"]["<0xBD>"] = 14;
  const Tokenizer t = Tokenizer::from_json(config);
  EXPECT_EQ(t.encode("a\xFF"
                     "b",
                     false),
            (Ids{1, 12, 13, 14, 2}));
}

TEST(Tokenizer, LoadRefusesWhatItCannotEncodeExactlyAndNamesIt) {
  const auto with = [](const char* key, const char* value) {
    json config = small_config();
    config[key] = json::parse(value);
    return config;
  };
  EXPECT_NE(load_error(with("normalizer", R"({"type": "BertNormalizer"})")).find("BertNormalizer"),
            std::string::npos);
  EXPECT_NE(load_error(with("normalizer", R"({"type": "Precompiled", "precompiled_charsmap": ""})"))
                .find("Precompiled"),
            std::string::npos);
  EXPECT_NE(load_error(with("pre_tokenizer", R"({"type": "Sequence", "pretokenizers": [
                {"type": "Whitespace"}]})"))
                .find("Whitespace"),
            std::string::npos);
  EXPECT_NE(
      load_error(with("decoder", R"({"type": "WordPiece", "prefix": "##"})")).find("WordPiece"),
      std::string::npos);
  EXPECT_NE(load_error(with("post_processor", R"({"type": "TemplateProcessing",
                "single": [{"Sequence": {"id": "B", "type_id": 0}}], "pair": [],
                "special_tokens": {}})"))
                .find("$A"),
            std::string::npos);
  EXPECT_NE(load_error(with("truncation", R"({"max_length": 8})")).find("truncation"),
            std::string::npos);
  EXPECT_NE(load_error(with("padding", R"({"strategy": "BatchLongest"})")).find("padding"),
            std::string::npos);
  EXPECT_NE(load_error(with("pre_tokenizer",
                            R"({"type": "Split", "pattern": {"Regex": "(?<"},
                "behavior": "Isolated", "invert": false})"))
                .find("does not compile"),
            std::string::npos);
  EXPECT_NE(load_error(with("pre_tokenizer",
                            R"({"type": "Split", "pattern": {"Regex": "a"},
                "behavior": "Sideways", "invert": false})"))
                .find("Sideways"),
            std::string::npos);

  json config = small_config();
  config["model"]["type"] = "WordPiece";
  EXPECT_NE(load_error(config).find("WordPiece"), std::string::npos);
  config = small_config();
  config["model"]["dropout"] = 0.1;
  EXPECT_NE(load_error(config).find("dropout"), std::string::npos);
  config = small_config();
  config["model"]["merges"] = json::array({"a q"});
  EXPECT_NE(load_error(config).find("\"q\""), std::string::npos);
  config = small_config();
  config["model"]["merges"] = json::array({"c d d"});
  EXPECT_NE(load_error(config).find("merge 1"), std::string::npos);
  config = small_config();
  config["version"] = "2.0";
  EXPECT_NE(load_error(config).find("version"), std::string::npos);
  EXPECT_NE(load_error(json::parse(R"({"model": {"type": "BPE"}})")).find("vocab"),
            std::string::npos);
}

TEST(Tokenizer, FromFileNamesAMissingFile) {
  try {
    Tokenizer::from_file("/nonexistent/tokenizer.json");
    FAIL() << "loaded a missing file";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.json"), std::string::npos);
  }
}

TEST(Tokenizer, ManyThreadsEncodeWithOneTokenizerAndAgree) {
  const Tokenizer t = Tokenizer::from_json(small_config());
  const std::string text = "abcd cd ab abab dcba abc abcabc";
  const Ids expected = t.encode(text, false);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 300; ++i) {
        // Fresh words too, so the cache is written while others read it.
        const std::string extra = " " + std::string(static_cast<std::size_t>(i % 50 + 1), 'a');
        if (t.encode(text + extra, false).size() < expected.size()) ++mismatches[k];
        if (t.encode(text, false) != expected) ++mismatches[k];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// \p{L} excludes combining marks, so GPT-2's pattern splits Devanagari at its vowel signs and
// viramas, as Oniguruma does for tokenizers.
TEST(PcreRegex, Gpt2PatternSplitsContractionsLettersMarksNumbersAndSpaces) {
  const PcreRegex re(
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  const std::string text = "it's  नमस्ते 42!\n";
  std::vector<std::string> pieces;
  for (const auto& [start, end] : re.find_all(text))
    pieces.push_back(text.substr(start, end - start));
  EXPECT_EQ(pieces,
            (std::vector<std::string>{"it", "'s", " ", " नमस", "्", "त", "े", " 42", "!", "\n"}));
}

TEST(PcreRegex, CaseInsensitiveGroupAndEmptyMatchesAdvance) {
  const PcreRegex contractions(R"((?i:'s|'ll))");
  EXPECT_EQ(contractions.find_all("IT'S WE'LL").size(), 2u);
  const PcreRegex empty("x*");
  EXPECT_EQ(empty.find_all("ab").size(), 3u);  // at 0, 1 and 2: never stuck
}

TEST(UnicodeText, NormalFormsAndLowercaseFollowTheUnicodeTables) {
  EXPECT_EQ(unicode::normalize("cafe\xCC\x81", unicode::NormalForm::nfc), "caf\xC3\xA9");
  EXPECT_EQ(unicode::normalize("caf\xC3\xA9", unicode::NormalForm::nfd), "cafe\xCC\x81");
  EXPECT_EQ(unicode::normalize("\xEF\xAC\x81", unicode::NormalForm::nfkc),
            "fi");  // ﬁ
  // Unicode 12.0's data, as tokenizers has: later compatibility mappings (U+A7F2 -> C from
  // Unicode 14, U+1FBF0 -> 0 from Unicode 13) are not applied.
  EXPECT_EQ(unicode::normalize("\xEA\x9F\xB2x", unicode::NormalForm::nfkc), "\xEA\x9F\xB2x");
  EXPECT_EQ(unicode::normalize("\xF0\x9F\xAF\xB0", unicode::NormalForm::nfkd), "\xF0\x9F\xAF\xB0");
  EXPECT_EQ(unicode::lowercase("ÀB\xCE\xA3"),
            "àb\xCF\x83");  // Σ alone: σ, never ς
  EXPECT_EQ(unicode::to_valid_utf8("a\xE2\x82z"), "a\xEF\xBF\xBDz");
  EXPECT_TRUE(unicode::is_whitespace(0x3000));
  EXPECT_FALSE(unicode::is_whitespace(0x200B));
  EXPECT_TRUE(unicode::is_numeric(0x00BD));    // ½
  EXPECT_TRUE(unicode::is_word_char(0x0301));  // a combining mark
}

}  // namespace
}  // namespace respawn
