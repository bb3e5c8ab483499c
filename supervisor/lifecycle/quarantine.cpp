#include "lifecycle/quarantine.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "respawn/utf8.hpp"

namespace respawn {
namespace {

constexpr std::size_t kRequestPreviewBytes = 200;

std::string hex_id(std::uint64_t fingerprint) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fingerprint));
  return buf;
}

double seconds(Quarantine::Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

std::uint64_t Quarantine::fingerprint(const Job& job) {
  // An FNV-1a-style hash over the type and both payload parts: stable across runs, so ids in
  // logs and in /admin/quarantine mean the same thing. Refusal hashes every job while the
  // quarantine holds anything, so the bytes go eight at a time (a 600 KB image: ~0.3 ms; a byte
  // at a time, ~1.3 ms), each step folding the high half back so every bit reaches the low bits.
  constexpr std::uint64_t kPrime = 0x100000001b3ULL;
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const auto step = [&h](std::uint64_t v) {
    h = (h ^ v) * kPrime;
    h ^= h >> 32;
  };
  const auto mix = [&step](std::string_view bytes) {
    std::size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) {
      std::uint64_t word;
      std::memcpy(&word, bytes.data() + i, 8);
      step(word);
    }
    for (; i < bytes.size(); ++i) step(static_cast<unsigned char>(bytes[i]));
    step(0x100 | bytes.size());  // a separator: ("ab","c") differs from ("a","bc")
  };
  mix(ipc::to_string(job.type));
  mix(job.json);
  mix(job.tensor_bytes());
  return h;
}

void Quarantine::add(const Job& job, const std::string& evidence, Clock::time_point now) {
  if (ttl_.count() == 0) return;
  expire(now);
  const auto fp = fingerprint(job);
  if (entries_.size() >= kMaxEntries && entries_.count(fp) == 0) {
    entries_.erase(std::min_element(entries_.begin(), entries_.end(), [](auto& a, auto& b) {
      return a.second.added < b.second.added;
    }));
  }
  Entry& e = entries_[fp];
  e.type = std::string(ipc::to_string(job.type));
  e.evidence = evidence;
  const auto preview = job.json.substr(0, kRequestPreviewBytes);
  e.request = sanitize_utf8(preview.substr(0, complete_utf8_prefix(preview)));
  e.failures = job.failures;
  e.added = now;
  e.expires = now + ttl_;
}

void Quarantine::expire(Clock::time_point now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->second.expires <= now ? entries_.erase(it) : std::next(it);
  }
}

bool Quarantine::refuses(const Job& job, Clock::time_point now) {
  if (entries_.empty()) return false;
  const auto it = entries_.find(fingerprint(job));
  if (it == entries_.end()) return false;
  if (it->second.expires <= now) {
    entries_.erase(it);
    return false;
  }
  ++it->second.refusals;
  return true;
}

std::size_t Quarantine::size(Clock::time_point now) {
  expire(now);
  return entries_.size();
}

nlohmann::json Quarantine::list(Clock::time_point now) {
  expire(now);
  auto out = nlohmann::json::array();
  for (const auto& [fp, e] : entries_) {
    out.push_back({{"id", hex_id(fp)},
                   {"type", e.type},
                   {"evidence", e.evidence},
                   {"request", e.request},
                   {"failures", e.failures},
                   {"refusals", e.refusals},
                   {"age_s", seconds(now - e.added)},
                   {"expires_in_s", seconds(e.expires - now)}});
  }
  return out;
}

std::size_t Quarantine::clear(const std::string& id) {
  if (id.empty()) return std::exchange(entries_, {}).size();
  std::uint64_t fp = 0;
  const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), fp, 16);
  if (ec != std::errc() || end != id.data() + id.size()) return 0;
  return entries_.erase(fp);
}

}  // namespace respawn
