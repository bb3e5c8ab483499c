#pragma once
// The recycle policy: every knob that decides when the supervisor replaces its worker, how it
// detects a hung or dead one, and how it protects requests and itself. One table describes
// the knobs (name, type, default, range, help) so that flags, the TOML config file,
// RESPAWN_<KNOB> environment variables and PATCH /admin/policy all read them the same way.
// Precedence when sources disagree: flag > env > file > default. Pure functions; thread-safe.
// See docs/policy.md for what each knob does and how to tune it.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"

namespace respawn {

struct Policy {
  std::uint64_t max_requests = 0;         // recycle after N requests; 0 = never; 1 = per request
  std::uint64_t max_requests_jitter = 0;  // + a random 0..jitter per worker
  std::uint64_t max_worker_age_s = 0;     // recycle at the next idle moment after; 0 = never
  std::uint64_t max_worker_rss_mb = 0;    // recycle when RSS after a request exceeds; 0 = off
  std::uint64_t max_gpu_memory_mb = 0;    // same for GPU memory in use; 0 = off
  std::uint64_t request_timeout_ms = 120000;  // total deadline incl. queue -> 504; 0 = none
  std::uint64_t hang_timeout_ms = 30000;      // busy worker silent this long is hung
  std::uint64_t load_timeout_ms = 120000;     // a worker not ready by then is killed
  std::uint64_t replay_limit = 1;             // re-sends of a request caught in a failure
  std::uint64_t poison_threshold = 2;         // failures a request may witness before quarantine
  std::uint64_t quarantine_ttl_s = 3600;      // how long a quarantined request stays refused
  std::uint64_t restart_backoff_ms = 100;
  std::uint64_t restart_backoff_max_ms = 5000;
  std::uint64_t crash_loop_failures = 5;  // unplanned failures within the window open the breaker
  std::uint64_t crash_loop_window_s = 60;
  std::uint64_t crash_loop_cooldown_s = 30;
  bool prestart_spare = false;              // load the next worker while the old one finishes
  std::uint64_t drain_timeout_ms = 30000;   // graceful shutdown and planned-recycle limit
  std::uint64_t max_batch_size = 8;         // requests in flight at the worker, batched; 1 = off
  std::uint64_t max_batch_delay_us = 1000;  // how long a tensor batch may wait to fill up
  bool empty_cache_after_request = true;    // cuda: release the allocator's cache after a batch
  bool fork_server = true;  // fork workers from a process that holds the model, else cold spawn
};

enum class KnobType { uint, boolean };

struct KnobInfo {
  std::string_view name;  // snake_case, as in JSON, TOML and after RESPAWN_ (upper-cased)
  KnobType type;
  std::uint64_t min;  // for uint knobs, inclusive
  std::uint64_t max;
  std::string_view help;  // one line, for --help
};

const std::vector<KnobInfo>& policy_knobs();

nlohmann::json to_json(const Policy& policy);

// Cross-field checks (e.g. restart_backoff_max_ms >= restart_backoff_ms). The message names
// the field(s).
std::optional<Error> validate(const Policy& policy);

// Applies a JSON object of knob -> value on top of `base`, all or nothing: an unknown knob, a
// value of the wrong JSON type, a value out of range or a failed cross-field check gives a
// bad_input Error whose message starts with the knob's name, and nothing is applied.
Result<Policy> apply_json(const Policy& base, const nlohmann::json& patch);

// Parses one raw string value for a knob as a flag or an environment variable gives it
// ("3", "on", "true", "0"...). Same error rules as apply_json.
Result<Policy> apply_string(const Policy& base, std::string_view knob, std::string_view value);

// Reads a TOML file: knobs at the top level or in a [policy] table. Unknown keys are errors
// (a typo must not silently keep the default). Errors name the file, and the key or the line.
Result<Policy> apply_toml_file(const Policy& base, const std::string& path);

// Resolves the policy from all sources: defaults, then the file (if path is not empty), then
// environment variables RESPAWN_<KNOB> found in `env` (name -> value; other names are
// ignored), then `flags` (knob name -> raw value). Then validate().
Result<Policy> resolve_policy(const std::string& config_path,
                              const std::map<std::string, std::string>& env,
                              const std::map<std::string, std::string>& flags);

// The process's environment as a map (for resolve_policy).
std::map<std::string, std::string> environment_map();

}  // namespace respawn
