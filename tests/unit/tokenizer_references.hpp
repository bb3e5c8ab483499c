#pragma once
// What the tokenizer reference tests share: the folder of tests/data/tokenizers, reading its
// JSON, and the check of a tokenizer against a references file's cases (ids with and without
// special tokens, and the three decodes) for its test strings.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/tokenizer.hpp"

namespace respawn::test {

inline std::filesystem::path tokenizer_data_dir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "tokenizers";
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  return nlohmann::json::parse(read_bytes(path));
}

// A string as a JSON literal, so control characters show in failure messages.
inline std::string printable(const std::string& s) {
  return nlohmann::json(s).dump();
}

// Expects `tokenizer` to agree with each case ({plain: {ids, decoded}, with_special: {ids,
// decoded}, decoded_skip_special}) for the string at the same index; returns how many agreed
// in full, and prints it under `label`.
inline std::size_t expect_agreement(const Tokenizer& tokenizer, const nlohmann::json& strings,
                                    const nlohmann::json& cases, const std::string& label) {
  EXPECT_EQ(strings.size(), cases.size());
  std::size_t agreeing = 0;
  for (std::size_t i = 0; i < std::min(strings.size(), cases.size()); ++i) {
    const std::string text = strings[i].get<std::string>();
    const nlohmann::json& expected = cases[i];
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
  std::printf("[ %-26s ] %zu/%zu strings agree\n", label.c_str(), agreeing, strings.size());
  return agreeing;
}

}  // namespace respawn::test
