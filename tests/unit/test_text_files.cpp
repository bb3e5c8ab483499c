// Tests for TextFiles and read_zip_member (text/respawn/text_files.hpp): a model's tokenizer
// and companions from a folder, a lone file, or the TorchScript model file that carries them.
#include "respawn/text_files.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace respawn {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = fs::path(__FILE__).parent_path().parent_path().parent_path();

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(TextFiles, AModelFileCarriesTheSameFilesAsItsFolder) {
  const auto model = (kSource / "models" / "tinyqwen" / "model.pt").string();
  const auto folder = (kSource / "models" / "tinyqwen").string();
  ASSERT_TRUE(TextFiles::embedded_in(model));
  EXPECT_FALSE(TextFiles::embedded_in((kSource / "models" / "demo.pt").string()));
  EXPECT_FALSE(TextFiles::embedded_in(folder));
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
    EXPECT_EQ(TextFiles(model).read(name), read(kSource / "models" / "tinyqwen" / name)) << name;
    EXPECT_EQ(TextFiles(folder).read(name), read(kSource / "models" / "tinyqwen" / name)) << name;
  }
  EXPECT_EQ(TextFiles(model).read("missing.json"), std::nullopt);
  EXPECT_EQ(TextFiles(model).where("tokenizer.json"), model + ":extra/tokenizer.json");
  const auto a = TextFiles(model).tokenizer();
  const auto b = TextFiles(folder).tokenizer();
  EXPECT_EQ(a.encode("The worker recycles.", true), b.encode("The worker recycles.", true));
  EXPECT_EQ(a.vocab_size(), b.vocab_size());
}

TEST(TextFiles, ALoneTokenizerFileHasNoCompanions) {
  const auto lone = (kSource / "models" / "tinyqwen" / "tokenizer.json").string();
  EXPECT_EQ(TextFiles(lone).read("tokenizer_config.json"), std::nullopt);
  EXPECT_GT(TextFiles(lone).tokenizer().vocab_size(), 1000u);
}

TEST(TextFiles, AModelFileWithoutATokenizerSaysSo) {
  const auto demo = (kSource / "models" / "demo.pt").string();
  try {
    TextFiles(demo).tokenizer();
    FAIL() << "no error";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("carries no extra file tokenizer.json"), std::string::npos)
        << e.what();
  }
}

TEST(ZipMember, Zip64SizesAndOffsetsAreRead) {
  const auto dir = kSource / "tests" / "data" / "zip";
  EXPECT_EQ(read_zip_member((dir / "zip64_member.zip").string(), "/extra/tokenizer.json"),
            R"({"zip64": true})");
  EXPECT_EQ(read_zip_member((dir / "zip64_central.zip").string(), "/extra/tokenizer.json"),
            R"({"zip64": "central"})");
  EXPECT_EQ(read_zip_member((dir / "zip64_central.zip").string(), "/extra/other.json"),
            std::nullopt);
}

TEST(ZipMember, CompressedMembersAndNonArchivesAreRefusedWithTheReason) {
  const auto dir = kSource / "tests" / "data" / "zip";
  const auto message = [](const fs::path& path) {
    try {
      read_zip_member(path.string(), "/extra/tokenizer.json");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(dir / "deflated_member.zip").find("is compressed"), std::string::npos);
  EXPECT_NE(message(dir / "README.md").find("not a zip archive"), std::string::npos);
  EXPECT_NE(message(dir / "no-such-file.zip").find("cannot open"), std::string::npos);
  // Cut short: the directory points past the end.
  const fs::path cut = fs::temp_directory_path() / "respawn-cut.zip";
  const auto whole = read(kSource / "models" / "tinyqwen" / "model.pt");
  std::ofstream(cut, std::ios::binary) << whole.substr(0, 4096) << whole.substr(whole.size() - 22);
  EXPECT_NE(message(cut), "no error");
  fs::remove(cut);
}

}  // namespace
}  // namespace respawn
