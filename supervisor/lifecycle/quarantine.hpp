#pragma once
// Quarantined requests (docs/policy.md, "Quarantine"): fingerprints of requests that brought
// workers down by themselves, so that an identical request is refused at once instead of
// killing another worker. Entries expire after a TTL (the quarantine_ttl_s knob), are bounded
// in number (the oldest goes first), and can be listed and cleared through the admin API.
// Not thread-safe: used on the I/O thread. Time is passed in, so tests need no clock.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "lifecycle/job.hpp"

namespace respawn {

class Quarantine {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxEntries = 1024;

  // What makes two requests identical: their type and IPC payload.
  static std::uint64_t fingerprint(const Job& job);

  void set_ttl(std::chrono::seconds ttl) { ttl_ = ttl; }
  // Quarantines `job` until now + ttl (a TTL of 0 remembers nothing); `evidence` says what it
  // did to the worker.
  void add(const Job& job, const std::string& evidence, Clock::time_point now);
  // Whether a request identical to `job` is quarantined; counts the refusal. Cheap while empty.
  bool refuses(const Job& job, Clock::time_point now);
  std::size_t size(Clock::time_point now);
  // [{"id", "type", "evidence", "request", "failures", "refusals", "age_s", "expires_in_s"}]
  nlohmann::json list(Clock::time_point now);
  // Removes the entry with this id (as list() shows it), or every entry when id is empty;
  // returns how many went.
  std::size_t clear(const std::string& id = {});

 private:
  struct Entry {
    std::string type;
    std::string evidence;
    std::string request;  // the start of the IPC payload, for the operator to recognise it
    unsigned failures = 0;
    std::uint64_t refusals = 0;
    Clock::time_point added;
    Clock::time_point expires;
  };
  void expire(Clock::time_point now);

  std::chrono::seconds ttl_{3600};
  std::map<std::uint64_t, Entry> entries_;
};

}  // namespace respawn
