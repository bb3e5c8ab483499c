// Tests for UTF-8 repair (common/respawn/utf8.hpp).
#include "respawn/utf8.hpp"

#include <random>
#include <string>

#include <gtest/gtest.h>

namespace respawn {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(Utf8, ValidTextIsUnchanged) {
  const std::string cases[] = {
      "",
      "hello, world\n",
      std::string("nul\0byte", 8),
      "\x7F",
      "caf\xC3\xA9",                       // é (2 bytes)
      "\xE2\x82\xAC 100",                  // € (3 bytes)
      "\xF0\x9F\x98\x80",                  // 😀 (4 bytes)
      "\xC2\x80\xDF\xBF",                  // 2-byte bounds U+0080, U+07FF
      "\xE0\xA0\x80\xEF\xBF\xBF",          // 3-byte bounds U+0800, U+FFFF
      "\xED\x9F\xBF\xEE\x80\x80",          // around the surrogates: U+D7FF, U+E000
      "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF",  // 4-byte bounds U+10000, U+10FFFF
  };
  for (const auto& s : cases) EXPECT_EQ(sanitize_utf8(s), s);
}

TEST(Utf8, SingleInvalidBytes) {
  EXPECT_EQ(sanitize_utf8("\xFF"), kFFFD);
  EXPECT_EQ(sanitize_utf8("\xFE"), kFFFD);
  EXPECT_EQ(sanitize_utf8("\xF5"), kFFFD);
  EXPECT_EQ(sanitize_utf8("a\xFF"
                          "b"),
            "a" + kFFFD + "b");
  EXPECT_EQ(sanitize_utf8("\x80"), kFFFD);  // lone continuation
  EXPECT_EQ(sanitize_utf8("x\x80\xBFy"), "x" + kFFFD + kFFFD + "y");
}

TEST(Utf8, OverlongFormsAreOneReplacementPerByte) {
  // C0 and C1 never start a valid sequence, so the 80 is a lone continuation afterwards.
  EXPECT_EQ(sanitize_utf8("\xC0\x80"), kFFFD + kFFFD);
  EXPECT_EQ(sanitize_utf8("\xC1\xBF"), kFFFD + kFFFD);
  // E0 80..9F and F0 80..8F are overlong: E0/F0 alone is the maximal subpart.
  EXPECT_EQ(sanitize_utf8("\xE0\x80\xAF"), repeat(kFFFD, 3));
  EXPECT_EQ(sanitize_utf8("\xF0\x80\x80\x80"), repeat(kFFFD, 4));
}

TEST(Utf8, SurrogatesAndBeyondMaxAreRejected) {
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), repeat(kFFFD, 3));      // U+D800
  EXPECT_EQ(sanitize_utf8("\xED\xBF\xBF"), repeat(kFFFD, 3));      // U+DFFF
  EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80"), repeat(kFFFD, 4));  // U+110000
}

TEST(Utf8, TruncatedSequenceAtTheEndIsOneReplacement) {
  EXPECT_EQ(sanitize_utf8("\xE2\x82"), kFFFD);
  EXPECT_EQ(sanitize_utf8("ab\xE2\x82"), "ab" + kFFFD);
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98"), kFFFD);
  EXPECT_EQ(sanitize_utf8("\xC3"), kFFFD);
}

TEST(Utf8, TruncatedSequenceInTheMiddleIsOneReplacement) {
  EXPECT_EQ(sanitize_utf8("\xE2\x82"
                          "A"),
            kFFFD + "A");
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98"
                          "A"),
            kFFFD + "A");
  // A new lead byte cuts the previous sequence short.
  EXPECT_EQ(sanitize_utf8("\xE2\x82\xE2\x82\xAC"), kFFFD + "\xE2\x82\xAC");
  EXPECT_EQ(sanitize_utf8("\xC3\xC3\xA9"), kFFFD + "\xC3\xA9");
}

TEST(Utf8, UnicodeStandardMaximalSubpartExample) {
  // The example of Unicode 15, section 3.9, table 3-8:
  // 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 -> a FFFD FFFD FFFD b FFFD c FFFD FFFD d
  const std::string in = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
  const std::string want = "a" + kFFFD + kFFFD + kFFFD + "b" + kFFFD + "c" + kFFFD + kFFFD + "d";
  EXPECT_EQ(sanitize_utf8(in), want);
}

TEST(Utf8, OutputIsAlwaysValid) {
  // Sanitizing valid UTF-8 is the identity, so a second pass must change nothing; and since
  // every output byte is accounted for, the result must be a fixed point for any input.
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 40);
  for (int round = 0; round < 2000; ++round) {
    std::string in(static_cast<std::size_t>(len(rng)), '\0');
    for (auto& c : in) c = static_cast<char>(byte(rng));
    const std::string once = sanitize_utf8(in);
    ASSERT_EQ(sanitize_utf8(once), once) << "input round " << round;
    EXPECT_EQ(complete_utf8_prefix(once), once.size());
  }
  // Some hand-picked nasty ones too.
  for (const std::string in : {"\xED\xA0\x80\xED\xB0\x80", "\xF8\x88\x80\x80\x80", "\xC0",
                               "\xE0\x9F", "\xF4\x8F\xBF", "\xBF\xBF\xBF\xBF\xBF"}) {
    const std::string once = sanitize_utf8(in);
    EXPECT_NE(once, in);
    EXPECT_EQ(sanitize_utf8(once), once);
  }
}

TEST(Utf8, CompletePrefixOfCompleteTextIsEverything) {
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
  EXPECT_EQ(complete_utf8_prefix("abc"), 3u);
  EXPECT_EQ(complete_utf8_prefix("caf\xC3\xA9"), 5u);
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x98\x80"), 4u);
  EXPECT_EQ(complete_utf8_prefix("x\xE2\x82\xAC"), 4u);
}

TEST(Utf8, CompletePrefixHoldsBackATruncatedSequence) {
  EXPECT_EQ(complete_utf8_prefix("ab\xC3"), 2u);
  EXPECT_EQ(complete_utf8_prefix("ab\xE2"), 2u);
  EXPECT_EQ(complete_utf8_prefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(complete_utf8_prefix("\xF0"), 0u);
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F"), 0u);
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x98"), 0u);
  EXPECT_EQ(complete_utf8_prefix("hello \xF0\x9F\x98"), 6u);
}

TEST(Utf8, CompletePrefixDoesNotHoldBackInvalidBytes) {
  // Bytes that can never become valid are not waiting for anything.
  EXPECT_EQ(complete_utf8_prefix("ab\xFF"), 3u);
  EXPECT_EQ(complete_utf8_prefix("ab\x80"), 3u);
  EXPECT_EQ(complete_utf8_prefix("ab\xE2("), 4u);
  EXPECT_EQ(complete_utf8_prefix("ab\xED\xA0"), 4u);  // would be a surrogate
  EXPECT_EQ(complete_utf8_prefix("ab\xC0"), 3u);      // overlong lead
}

TEST(Utf8, StreamingWithCompletePrefixNeverSplitsACodePoint) {
  // Feed a multibyte text byte by byte, emitting only complete prefixes: each emitted piece
  // is valid on its own and together they rebuild the text.
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";
  std::string pending, emitted;
  for (char c : text) {
    pending.push_back(c);
    const std::size_t n = complete_utf8_prefix(pending);
    const std::string piece = pending.substr(0, n);
    EXPECT_EQ(sanitize_utf8(piece), piece);
    emitted += piece;
    pending.erase(0, n);
  }
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(emitted, text);
}

}  // namespace
}  // namespace respawn
