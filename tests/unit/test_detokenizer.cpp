// Tests for IncrementalDetokenizer (text/respawn/detokenizer.hpp): ids pushed one at a time give
// pieces of valid UTF-8 that add up to the text of all of them, for every tokenizer family of
// tests/data/tokenizers (tokenizer.json, or a SentencePiece tokenizer.model) and the strings of
// its references.
#include "respawn/detokenizer.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "respawn/utf8.hpp"
#include "tokenizer_references.hpp"

namespace respawn {
namespace {

using nlohmann::json;

using test::read_json;

std::filesystem::path data_dir() {
  return test::tokenizer_data_dir();
}

// Every test string of references.json.
std::vector<std::string> corpus() {
  std::vector<std::string> out;
  const auto references = read_json(data_dir() / "references.json");
  for (const auto& s : references["strings"]) {
    out.push_back(s.get<std::string>());
  }
  return out;
}

// The family's tokenizer.json, or its tokenizer.model.
std::string tokenizer_file(const std::string& family) {
  const auto json_file = data_dir() / family / "tokenizer.json";
  if (std::filesystem::exists(json_file)) return json_file.string();
  return (data_dir() / family / "tokenizer.model").string();
}

class Detokenizer : public testing::TestWithParam<std::string> {};

TEST_P(Detokenizer, PiecesAreValidUtf8AndAddUpToTheDecodedText) {
  const auto tokenizer = Tokenizer::from_file(tokenizer_file(GetParam()));
  const auto prompt = tokenizer.encode("Answer:", false);
  for (const auto& text : corpus()) {
    const auto ids = tokenizer.encode(text, false);
    IncrementalDetokenizer stream(tokenizer, prompt);
    std::string joined;
    for (const auto id : ids) {
      const auto piece = stream.push(id);
      EXPECT_EQ(sanitize_utf8(piece), piece) << text;
      joined += piece;
    }
    joined += stream.flush();
    // The text of the ids as they continue the prompt.
    auto all = prompt;
    all.insert(all.end(), ids.begin(), ids.end());
    const auto whole = tokenizer.decode(all, true);
    const auto head = tokenizer.decode(prompt, true);
    ASSERT_EQ(whole.compare(0, head.size(), head), 0);
    EXPECT_EQ(joined, whole.substr(head.size())) << text;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, Detokenizer,
                         testing::Values("gpt2", "qwen2", "llama3", "sentencepiece", "spm_bpe",
                                         "spm_unigram"));

TEST(DetokenizerHoldBack, APartialCharacterWaitsForItsLastByte) {
  const auto tokenizer = Tokenizer::from_file((data_dir() / "gpt2" / "tokenizer.json").string());
  // Byte-level tokens for the three bytes of "€" (E2 82 AC), one by one.
  std::vector<std::uint32_t> bytes;
  // ByteLevel's characters for those bytes: â, Ĥ, ¬.
  for (const char* token : {"\xC3\xA2", "\xC4\xA4", "\xC2\xAC"}) {
    const auto id = tokenizer.token_to_id(token);
    ASSERT_TRUE(id.has_value()) << token;
    bytes.push_back(*id);
  }
  IncrementalDetokenizer stream(tokenizer, {});
  EXPECT_EQ(stream.push(bytes[0]), "");
  EXPECT_EQ(stream.push(bytes[1]), "");
  EXPECT_EQ(stream.push(bytes[2]), "\xE2\x82\xAC");
  // Cut short, a partial character comes out as U+FFFD at the end.
  IncrementalDetokenizer cut(tokenizer, {});
  EXPECT_EQ(cut.push(bytes[0]), "");
  EXPECT_EQ(cut.flush(), "\xEF\xBF\xBD");
}

TEST(DetokenizerHoldBack, SentencePieceByteFallbackWaitsForTheLastByteToo) {
  const auto tokenizer = Tokenizer::from_file(tokenizer_file("spm_bpe"));
  std::vector<std::uint32_t> bytes;
  for (const char* piece : {"<0xE2>", "<0x82>", "<0xAC>"}) {
    const auto id = tokenizer.token_to_id(piece);
    ASSERT_TRUE(id.has_value()) << piece;
    bytes.push_back(*id);
  }
  IncrementalDetokenizer stream(tokenizer, tokenizer.encode("Answer:", true));
  EXPECT_EQ(stream.push(bytes[0]), "");
  EXPECT_EQ(stream.push(bytes[1]), "");
  EXPECT_EQ(stream.push(bytes[2]), "\xE2\x82\xAC");
  // The space SentencePiece's Decode drops at the start of a text stays after the prompt.
  // ("world" is "▁world": the dummy prefix.)
  const auto word = tokenizer.encode("world", false);
  std::string text;
  for (const auto id : word) text += stream.push(id);
  text += stream.flush();
  EXPECT_EQ(text, " world");
  // And a generation with no prompt starts without it, as Decode does.
  IncrementalDetokenizer bare(tokenizer, {});
  text.clear();
  for (const auto id : tokenizer.encode("Hello world", false)) text += bare.push(id);
  EXPECT_EQ(text + bare.flush(), "Hello world");
}

}  // namespace
}  // namespace respawn
