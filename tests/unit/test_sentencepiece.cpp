// Tests that respawn::Tokenizer reads SentencePiece tokenizer.model files (text/tokenizer_spm.cpp)
// as the `sentencepiece` Python package does: tests/data/tokenizers/sentencepiece_references.json
// holds, for a Llama-2 style BPE model with byte fallback and a T5 style Unigram model, every
// piece and its kind, and for each test string the ids with and without BOS and their decodes
// (scripts/make_sentencepiece_refs.py makes it).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "respawn/tokenizer.hpp"
#include "tokenizer_references.hpp"

namespace respawn {
namespace {

using nlohmann::json;

using test::printable;

std::filesystem::path data_dir() {
  return test::tokenizer_data_dir();
}

const json& references() {
  static const json refs =
      json::parse(test::read_bytes(data_dir() / "sentencepiece_references.json"));
  return refs;
}

std::string model_path(const std::string& name) {
  return (data_dir() / name / "tokenizer.model").string();
}

const std::vector<std::string> kModels = {"spm_bpe", "spm_unigram"};

TEST(SentencePieceReferences, TheTestCoversEveryModelTheReferencesHold) {
  std::set<std::string> in_file;
  for (const auto& [name, model] : references()["models"].items()) in_file.insert(name);
  EXPECT_EQ(in_file, std::set<std::string>(kModels.begin(), kModels.end()));
  EXPECT_GE(references()["strings"].size(), 60u);
}

class SentencePieceReference : public ::testing::TestWithParam<std::string> {
 protected:
  const json& model() const { return references()["models"][GetParam()]; }
};

TEST_P(SentencePieceReference, PiecesAndKindsAgree) {
  const Tokenizer tokenizer = Tokenizer::from_file(model_path(GetParam()));
  const json& pieces = model()["pieces"];
  const json& kinds = model()["kinds"];
  ASSERT_EQ(tokenizer.vocab_size(), model()["piece_size"].get<std::size_t>());
  ASSERT_EQ(pieces.size(), tokenizer.vocab_size());
  for (std::uint32_t id = 0; id < pieces.size(); ++id) {
    const std::string piece = pieces[id].get<std::string>();
    EXPECT_EQ(tokenizer.id_to_token(id), piece) << id;
    EXPECT_EQ(tokenizer.token_to_id(piece), id) << printable(piece);
    const std::string kind = kinds[id].get<std::string>();
    EXPECT_EQ(tokenizer.is_special(id), kind == "control" || kind == "unknown") << id;
  }
  const auto size = static_cast<std::uint32_t>(tokenizer.vocab_size());
  EXPECT_EQ(tokenizer.id_to_token(size), std::nullopt);
  EXPECT_FALSE(tokenizer.is_special(size));
  // PieceToId answers unk's id for these; token_to_id must not.
  EXPECT_EQ(tokenizer.token_to_id("no such piece \xE2\x98\x83"), std::nullopt);
  EXPECT_EQ(tokenizer.token_to_id(""), std::nullopt);
  EXPECT_EQ(tokenizer.token_to_id("<s>"),
            model()["bos_id"].get<int>() >= 0
                ? std::optional<std::uint32_t>(model()["bos_id"].get<std::uint32_t>())
                : std::nullopt);
}

TEST_P(SentencePieceReference, IdsAndDecodesAgreeWithTheSentencePiecePackage) {
  const Tokenizer tokenizer = Tokenizer::from_file(model_path(GetParam()));
  test::expect_agreement(tokenizer, references()["strings"], model()["cases"], GetParam());
}

TEST_P(SentencePieceReference, DecodesOfOtherIdSequencesAgree) {
  const Tokenizer tokenizer = Tokenizer::from_file(model_path(GetParam()));
  ASSERT_FALSE(model()["decodes"].empty());
  for (const json& expected : model()["decodes"]) {
    const auto ids = expected["ids"].get<std::vector<std::uint32_t>>();
    EXPECT_EQ(tokenizer.decode(ids), expected["decoded"].get<std::string>()) << expected["ids"];
    EXPECT_EQ(tokenizer.decode(ids, true), expected["decoded_skip_special"].get<std::string>())
        << expected["ids"];
  }
}

TEST_P(SentencePieceReference, IdsOutOfRangeAreSkipped) {
  const Tokenizer tokenizer = Tokenizer::from_file(model_path(GetParam()));
  const auto ids = tokenizer.encode("Hello world", false);
  auto more = ids;
  more.insert(more.begin() + 1, static_cast<std::uint32_t>(tokenizer.vocab_size()));
  more.push_back(4'000'000'000u);
  EXPECT_EQ(tokenizer.decode(more), tokenizer.decode(ids));
  EXPECT_EQ(tokenizer.decode(more, true), tokenizer.decode(ids, true));
  EXPECT_EQ(tokenizer.decode(ids), "Hello world");
}

TEST_P(SentencePieceReference, ALoadedModelEqualsOneFromItsBytes) {
  const Tokenizer from_file = Tokenizer::from_file(model_path(GetParam()));
  const Tokenizer from_bytes =
      Tokenizer::from_sentencepiece(test::read_bytes(model_path(GetParam())));
  for (const auto& text : references()["strings"]) {
    EXPECT_EQ(from_file.encode(text.get<std::string>()),
              from_bytes.encode(text.get<std::string>()));
  }
}

TEST_P(SentencePieceReference, InvalidUtf8IsReadAsReplacementCharacters) {
  const Tokenizer tokenizer = Tokenizer::from_file(model_path(GetParam()));
  EXPECT_EQ(tokenizer.encode("ab\xFF"
                             "cd\xC3"),
            tokenizer.encode("ab\xEF\xBF\xBD"
                             "cd\xEF\xBF\xBD"));
}

TEST_P(SentencePieceReference, ThreadsEncodeAndDecodeAtOnce) {
  const Tokenizer tokenizer = Tokenizer::from_file(model_path(GetParam()));
  std::vector<std::vector<std::uint32_t>> want;
  for (const auto& text : references()["strings"]) {
    want.push_back(tokenizer.encode(text.get<std::string>()));
  }
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      const Tokenizer copy = tokenizer;
      for (int round = 0; round < 5; ++round) {
        std::size_t i = 0;
        for (const auto& text : references()["strings"]) {
          const auto ids = copy.encode(text.get<std::string>());
          if (ids != want[i++] || copy.decode(ids).size() > 4 * text.get<std::string>().size() + 64)
            ++failures[k];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

INSTANTIATE_TEST_SUITE_P(Models, SentencePieceReference, ::testing::ValuesIn(kModels),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(SentencePiece, BosIsPrependedOnlyWhenTheModelHasOne) {
  const Tokenizer llama = Tokenizer::from_file(model_path("spm_bpe"));
  const auto bos = llama.token_to_id("<s>");
  ASSERT_TRUE(bos.has_value());
  EXPECT_TRUE(llama.is_special(*bos));
  const auto plain = llama.encode("Hello", false);
  auto with_bos = plain;
  with_bos.insert(with_bos.begin(), *bos);
  EXPECT_EQ(llama.encode("Hello", true), with_bos);
  EXPECT_EQ(llama.encode("", true), std::vector<std::uint32_t>{*bos});
  // T5 style: no BOS, and no EOS either (add_eos_token is off, as Llama's).
  const Tokenizer t5 = Tokenizer::from_file(model_path("spm_unigram"));
  EXPECT_EQ(t5.encode("Hello", true), t5.encode("Hello", false));
  EXPECT_TRUE(t5.encode("", true).empty());
}

TEST(SentencePiece, ControlSymbolsInTheTextAreText) {
  const Tokenizer llama = Tokenizer::from_file(model_path("spm_bpe"));
  const auto bos = *llama.token_to_id("<s>");
  const auto eos = *llama.token_to_id("</s>");
  const auto ids = llama.encode("<s>Hi</s>", false);
  for (const auto id : ids) {
    EXPECT_NE(id, bos);
    EXPECT_NE(id, eos);
  }
  EXPECT_EQ(llama.decode(ids, true), "<s>Hi</s>");
  // Their ids decode to nothing, skipped or not.
  EXPECT_EQ(llama.decode({bos, eos}), "");
  // A user-defined symbol is matched in the text, and is not special.
  const Tokenizer t5 = Tokenizer::from_file(model_path("spm_unigram"));
  const auto mask = t5.token_to_id("[MASK]");
  ASSERT_TRUE(mask.has_value());
  EXPECT_FALSE(t5.is_special(*mask));
  const auto masked = t5.encode("[MASK]", false);
  EXPECT_NE(std::find(masked.begin(), masked.end(), *mask), masked.end());
  EXPECT_EQ(t5.decode({*mask}, true), "[MASK]");
}

TEST(SentencePiece, ByteFallbackPiecesDecodeAsBytes) {
  const Tokenizer llama = Tokenizer::from_file(model_path("spm_bpe"));
  std::vector<std::uint32_t> ids;
  for (const char* piece : {"<0xE2>", "<0x82>", "<0xAC>"}) {
    const auto id = llama.token_to_id(piece);
    ASSERT_TRUE(id.has_value()) << piece;
    EXPECT_FALSE(llama.is_special(*id));
    ids.push_back(*id);
  }
  EXPECT_EQ(llama.decode(ids), "\xE2\x82\xAC");
  // A character the vocab lacks is encoded as its bytes.
  const auto snowman = llama.encode("\xE2\x98\x83", false);
  EXPECT_EQ(llama.decode(snowman), "\xE2\x98\x83");
}

// Files that are neither: a temp file per test, removed after.
class SentencePieceFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("respawn_spm_test_" + std::to_string(::getpid()) + ".model"))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void write(const std::string& bytes) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  // The message of from_file's TokenizerError, or "" when it loads.
  std::string load_error() {
    try {
      Tokenizer::from_file(path_);
    } catch (const TokenizerError& e) {
      return e.what();
    }
    return "";
  }
  std::string path_;
};

TEST_F(SentencePieceFile, CorruptModelsThrowAClearError) {
  write("this is not a model at all\x01\x02\x03");
  std::string error = load_error();
  EXPECT_NE(error.find(path_), std::string::npos) << error;
  EXPECT_NE(error.find("not a SentencePiece model"), std::string::npos) << error;
  EXPECT_NE(error.find("tokenizer.json starts with '{'"), std::string::npos) << error;

  // A real model cut short.
  const std::string model = test::read_bytes(model_path("spm_bpe"));
  write(model.substr(0, model.size() / 2));
  error = load_error();
  EXPECT_NE(error.find(path_), std::string::npos) << error;
  EXPECT_NE(error.find("SentencePiece"), std::string::npos) << error;

  // A protobuf that parses but has no pieces (no <unk>).
  write(std::string("\x22\x00", 2));
  error = load_error();
  EXPECT_NE(error.find("invalid SentencePiece model"), std::string::npos) << error;

  write("");
  error = load_error();
  EXPECT_NE(error.find("empty"), std::string::npos) << error;
  EXPECT_THROW(Tokenizer::from_sentencepiece(""), TokenizerError);
  EXPECT_THROW(Tokenizer::from_sentencepiece("garbage"), TokenizerError);

  std::filesystem::remove(path_);
  error = load_error();
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
}

TEST_F(SentencePieceFile, JsonIsStillReadAsTokenizerJson) {
  write(" \n\t" + test::read_bytes(data_dir() / "sentencepiece" / "tokenizer.json"));
  EXPECT_EQ(load_error(), "");
  write("{\"model\": ");
  const std::string error = load_error();
  EXPECT_NE(error.find("not valid JSON"), std::string::npos) << error;
  EXPECT_EQ(error.find("SentencePiece"), std::string::npos) << error;
}

}  // namespace
}  // namespace respawn
