// Tests for Quarantine (supervisor/lifecycle/quarantine.hpp): identity, expiry, bounds, listing,
// clearing.
#include "lifecycle/quarantine.hpp"

#include <gtest/gtest.h>

namespace respawn {
namespace {

using std::chrono::seconds;

Job job(const std::string& json, ipc::MessageType type = ipc::MessageType::generate) {
  Job j;
  j.type = type;
  j.json = json;
  j.failures = 2;
  return j;
}

const Quarantine::Clock::time_point t0{};

TEST(Quarantine, RefusesOnlyIdenticalRequests) {
  Quarantine q;
  q.add(job(R"({"prompt":"boom"})"), "died of signal 6", t0);
  EXPECT_TRUE(q.refuses(job(R"({"prompt":"boom"})"), t0));
  EXPECT_FALSE(q.refuses(job(R"({"prompt":"boom!"})"), t0));
  EXPECT_FALSE(q.refuses(job(R"({"prompt":"boom"})", ipc::MessageType::infer), t0));
  Job with_binary = job(R"({"prompt":"boom"})");
  with_binary.binary = std::make_shared<const std::string>("x");
  EXPECT_FALSE(q.refuses(with_binary, t0));
}

TEST(Quarantine, EntriesExpireAfterTheTtl) {
  Quarantine q;
  q.set_ttl(seconds(10));
  q.add(job("a"), "e", t0);
  EXPECT_TRUE(q.refuses(job("a"), t0 + seconds(9)));
  EXPECT_FALSE(q.refuses(job("a"), t0 + seconds(10)));
  EXPECT_EQ(q.size(t0 + seconds(10)), 0u);
}

TEST(Quarantine, ATtlOfZeroRemembersNothing) {
  Quarantine q;
  q.set_ttl(seconds(0));
  q.add(job("a"), "e", t0);
  EXPECT_FALSE(q.refuses(job("a"), t0));
  EXPECT_EQ(q.size(t0), 0u);
}

TEST(Quarantine, IsBoundedAndDropsTheOldestFirst) {
  Quarantine q;
  for (std::size_t i = 0; i <= Quarantine::kMaxEntries; ++i) {
    q.add(job(std::to_string(i)), "e", t0 + seconds(i));
  }
  const auto now = t0 + seconds(Quarantine::kMaxEntries);
  EXPECT_EQ(q.size(now), Quarantine::kMaxEntries);
  EXPECT_FALSE(q.refuses(job("0"), now));
  EXPECT_TRUE(q.refuses(job("1"), now));
  EXPECT_TRUE(q.refuses(job(std::to_string(Quarantine::kMaxEntries)), now));
}

TEST(Quarantine, ListsEntriesWithTheirCountsAndClearsThemByIdOrAll) {
  Quarantine q;
  q.add(job(R"({"prompt":"boom"})"), "died of signal 11 (Segmentation fault)", t0);
  q.add(job("other"), "e", t0);
  EXPECT_TRUE(q.refuses(job(R"({"prompt":"boom"})"), t0 + seconds(5)));
  const auto list = q.list(t0 + seconds(5));
  ASSERT_EQ(list.size(), 2u);
  const auto it = std::find_if(list.begin(), list.end(), [](const auto& e) {
    return e["request"] == R"({"prompt":"boom"})";
  });
  ASSERT_NE(it, list.end());
  EXPECT_EQ((*it)["refusals"], 1);
  EXPECT_EQ((*it)["failures"], 2);
  EXPECT_EQ((*it)["type"], "generate");
  EXPECT_EQ((*it)["evidence"], "died of signal 11 (Segmentation fault)");
  EXPECT_DOUBLE_EQ((*it)["age_s"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ((*it)["expires_in_s"].get<double>(), 3595.0);
  EXPECT_EQ((*it)["id"].get<std::string>().size(), 16u);
  EXPECT_EQ(q.clear("0000000000000000"), 0u);
  EXPECT_EQ(q.clear((*it)["id"]), 1u);
  EXPECT_FALSE(q.refuses(job(R"({"prompt":"boom"})"), t0));
  EXPECT_EQ(q.clear(), 1u);
  EXPECT_EQ(q.size(t0), 0u);
}

TEST(Quarantine, ThePreviewIsShortAndValidUtf8) {
  Quarantine q;
  std::string prompt(199, 'a');
  prompt += "\xc3\xa9";  // é split by the 200-byte cut
  q.add(job(prompt), "e", t0);
  const auto request = q.list(t0)[0]["request"].get<std::string>();
  EXPECT_EQ(request, std::string(199, 'a'));
}

TEST(Quarantine, FingerprintsAreStable) {
  // Ids in logs and in /admin/quarantine mean the same thing across restarts.
  EXPECT_EQ(Quarantine::fingerprint(job("a")), Quarantine::fingerprint(job("a")));
  EXPECT_NE(Quarantine::fingerprint(job("ab")), Quarantine::fingerprint(job("a")));
}

TEST(Quarantine, EveryByteOfALargePayloadCounts) {
  Job a = job(R"({"inputs":[]})", ipc::MessageType::infer);
  std::string image(602112, '\x3f');
  a.binary = std::make_shared<const std::string>(image);
  const auto base = Quarantine::fingerprint(a);
  EXPECT_EQ(base, Quarantine::fingerprint(a));
  // One bit anywhere (the top bit of a word, the tail after the last whole word) changes it,
  // in its low bits too (the ones a hash table's buckets use).
  for (const std::size_t at :
       {std::size_t{0}, std::size_t{7}, std::size_t{301059}, image.size() - 1}) {
    for (const unsigned char bit : {0x01, 0x80}) {
      std::string changed = image;
      changed[at] = static_cast<char>(changed[at] ^ bit);
      Job b = a;
      b.binary = std::make_shared<const std::string>(changed);
      const auto other = Quarantine::fingerprint(b);
      EXPECT_NE(other, base) << at << " " << int(bit);
      EXPECT_NE(other & 0xffff, base & 0xffff) << at << " " << int(bit);
    }
  }
  // Only the tensor bytes count, not what lies before binary_offset (a binary request's body
  // kept whole, its JSON header first).
  Job whole = a;
  whole.binary = std::make_shared<const std::string>("{\"header\":1}" + image);
  whole.binary_offset = 12;
  EXPECT_EQ(Quarantine::fingerprint(whole), base);
  // Where the JSON ends and the bytes begin matters.
  Job c = job("ab", ipc::MessageType::infer), d = job("a", ipc::MessageType::infer);
  c.binary = std::make_shared<const std::string>("c");
  d.binary = std::make_shared<const std::string>("bc");
  EXPECT_NE(Quarantine::fingerprint(c), Quarantine::fingerprint(d));
}

}  // namespace
}  // namespace respawn
