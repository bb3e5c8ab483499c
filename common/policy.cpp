#include "respawn/policy.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <utility>
#include <variant>

#include <toml++/toml.h>

extern char** environ;

namespace respawn {
namespace {

// One row per knob; every source (JSON, TOML, strings) and every output (to_json, --help)
// walks this table, so a new knob is one line here plus the field in Policy.
struct Knob {
  KnobInfo info;
  std::uint64_t Policy::*uint_field;  // set for KnobType::uint
  bool Policy::*bool_field;           // set for KnobType::boolean
};

// The macros stringize the member name, so a knob's public name cannot drift from the field
// it sets.
// clang-format off
#define RESPAWN_UINT_KNOB(field, lo, hi, help) \
  Knob{{#field, KnobType::uint, lo, hi, help}, &Policy::field, nullptr}
#define RESPAWN_BOOL_KNOB(field, help) \
  Knob{{#field, KnobType::boolean, 0, 1, help}, nullptr, &Policy::field}
// clang-format on

constexpr std::uint64_t kTrillion = 1000000000000;
constexpr std::uint64_t kDayS = 86400;
constexpr std::uint64_t kDayMs = kDayS * 1000;

const Knob kKnobs[] = {
    RESPAWN_UINT_KNOB(max_requests, 0, kTrillion,
                      "recycle a worker after N requests; 0 = never, 1 = every request (0..1e12)"),
    RESPAWN_UINT_KNOB(max_requests_jitter, 0, kTrillion,
                      "add a random 0..N to max_requests per worker (0..1e12)"),
    RESPAWN_UINT_KNOB(max_worker_age_s, 0, 30 * kDayS,
                      "recycle at the next idle moment after N seconds; 0 = never (0..30 days)"),
    RESPAWN_UINT_KNOB(max_worker_rss_mb, 0, 16777216,
                      "recycle when RSS after a request exceeds N MiB; 0 = off (0..16M)"),
    RESPAWN_UINT_KNOB(max_gpu_memory_mb, 0, 16777216,
                      "recycle when GPU memory after a request exceeds N MiB; 0 = off (0..16M)"),
    RESPAWN_UINT_KNOB(request_timeout_ms, 0, kDayMs,
                      "total request deadline incl. queueing, then 504; 0 = none (0..86400000)"),
    RESPAWN_UINT_KNOB(hang_timeout_ms, 100, kDayMs,
                      "a busy worker silent this long is hung and killed (100..86400000)"),
    RESPAWN_UINT_KNOB(load_timeout_ms, 100, kDayMs,
                      "a worker not ready this long after spawn is killed (100..86400000)"),
    RESPAWN_UINT_KNOB(replay_limit, 0, 10,
                      "re-sends of a request caught in a worker failure (0..10)"),
    RESPAWN_UINT_KNOB(poison_threshold, 1, 100,
                      "worker failures a request may witness before quarantine (1..100)"),
    RESPAWN_UINT_KNOB(quarantine_ttl_s, 0, 30 * kDayS,
                      "seconds an identical request stays refused after a quarantine; 0 = not "
                      "at all (0..30 days)"),
    RESPAWN_UINT_KNOB(restart_backoff_ms, 1, 600000,
                      "first restart delay after a failure, doubled per failure (1..600000)"),
    RESPAWN_UINT_KNOB(restart_backoff_max_ms, 1, 3600000,
                      "cap on the restart delay; >= restart_backoff_ms (1..3600000)"),
    RESPAWN_UINT_KNOB(crash_loop_failures, 1, 1000,
                      "unplanned failures within the window that open the breaker (1..1000)"),
    RESPAWN_UINT_KNOB(crash_loop_window_s, 1, kDayS,
                      "sliding window for counting crash-loop failures, seconds (1..86400)"),
    RESPAWN_UINT_KNOB(crash_loop_cooldown_s, 1, kDayS,
                      "seconds the breaker stays open before a single probe (1..86400)"),
    RESPAWN_BOOL_KNOB(prestart_spare,
                      "keep a second worker loaded, so recycles and crashes swap at once "
                      "(true/false; costs a second copy of the model)"),
    RESPAWN_UINT_KNOB(drain_timeout_ms, 0, 3600000,
                      "limit for graceful shutdown and planned-recycle drains (0..3600000)"),
    RESPAWN_UINT_KNOB(max_batch_size, 1, 1024,
                      "requests the worker holds and batches at once; 1 = no batching (1..1024)"),
    RESPAWN_UINT_KNOB(max_batch_delay_us, 0, 1000000,
                      "how long a tensor batch may wait to fill up, microseconds (0..1000000)"),
    RESPAWN_BOOL_KNOB(empty_cache_after_request,
                      "cuda: hand the allocator's cached blocks back after each batch "
                      "(true/false; no effect on cpu)"),
    RESPAWN_BOOL_KNOB(fork_server,
                      "start workers from a fork server that keeps libtorch and the model "
                      "loaded (true/false; off = every worker starts cold)"),
};

#undef RESPAWN_UINT_KNOB
#undef RESPAWN_BOOL_KNOB

// A value already converted to the knob's type but not yet range-checked.
using KnobValue = std::variant<std::uint64_t, bool>;

const Knob* find_knob(std::string_view name) {
  for (const Knob& knob : kKnobs) {
    if (knob.info.name == name) return &knob;
  }
  return nullptr;
}

Error bad(std::string message) {
  return make_error(ErrorKind::bad_input, std::move(message));
}

Error unknown_knob(std::string_view name) {
  return bad(std::string(name) + ": not a policy knob");
}

// `words`: the source also accepts on/off, yes/no, 1/0 (strings), so say so.
Error expected(const Knob& knob, bool words) {
  std::string message(knob.info.name);
  if (knob.info.type == KnobType::uint) {
    return bad(message + ": must be an integer between " + std::to_string(knob.info.min) + " and " +
               std::to_string(knob.info.max));
  }
  return bad(message +
             (words ? ": must be true/false, on/off, yes/no or 1/0" : ": must be true or false"));
}

// Stores `value` after the range check; nullopt means the source had the wrong type.
std::optional<Error> store(Policy& policy, const Knob& knob, const std::optional<KnobValue>& value,
                           bool words) {
  if (value && knob.uint_field && std::holds_alternative<std::uint64_t>(*value)) {
    const std::uint64_t n = std::get<std::uint64_t>(*value);
    if (n < knob.info.min || n > knob.info.max) return expected(knob, words);
    policy.*knob.uint_field = n;
    return std::nullopt;
  }
  if (value && knob.bool_field && std::holds_alternative<bool>(*value)) {
    policy.*knob.bool_field = std::get<bool>(*value);
    return std::nullopt;
  }
  return expected(knob, words);
}

std::optional<KnobValue> parse_uint(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;  // no sign, space, dot or hex
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (n > (UINT64_MAX - digit) / 10) return std::nullopt;  // would overflow
    n = n * 10 + digit;
  }
  return n;
}

std::optional<KnobValue> parse_bool(std::string_view text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true" || lower == "on" || lower == "yes" || lower == "1") return true;
  if (lower == "false" || lower == "off" || lower == "no" || lower == "0") return false;
  return std::nullopt;
}

std::optional<KnobValue> from_string(std::string_view text, KnobType type) {
  return type == KnobType::uint ? parse_uint(text) : parse_bool(text);
}

// JSON is strict: integers for uint knobs (nlohmann keeps 5 and 5u apart, accept both when
// non-negative), real booleans for bool knobs; "3", 3.0 and 1-for-true are client bugs.
std::optional<KnobValue> from_json(const nlohmann::json& value, KnobType type) {
  if (type == KnobType::boolean) {
    if (value.is_boolean()) return value.get<bool>();
    return std::nullopt;
  }
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(value.get<std::int64_t>());
  }
  return std::nullopt;
}

// TOML has real booleans, but a config written as prestart_spare = "on" is unambiguous, so
// bool knobs also take the string forms flags and env accept.
std::optional<KnobValue> from_toml(const toml::node& node, KnobType type) {
  if (type == KnobType::uint) {
    const auto* n = node.as_integer();
    if (n && n->get() >= 0) return static_cast<std::uint64_t>(n->get());
    return std::nullopt;
  }
  if (const auto* b = node.as_boolean()) return b->get();
  if (const auto* s = node.as_string()) return parse_bool(s->get());
  return std::nullopt;
}

// apply_string without the cross-field check: resolve_policy sets knobs one by one and a
// valid final policy may pass through an invalid intermediate one.
std::optional<Error> set_from_string(Policy& policy, std::string_view name, std::string_view text) {
  const Knob* knob = find_knob(name);
  if (!knob) return unknown_knob(name);
  return store(policy, *knob, from_string(text, knob->info.type), true);
}

Error with_prefix(const std::string& prefix, Error error) {
  error.message = prefix + error.message;
  return error;
}

std::string toml_where(const std::string& path, const toml::node& node) {
  return path + ":" + std::to_string(node.source().begin.line) + ": ";
}

// Applies the knobs of one TOML table; `prefix` ("" or "policy.") makes error keys match
// what the user wrote. `seen` collects knob names to catch a knob set in both places.
std::optional<Error> apply_toml_table(Policy& policy, const toml::table& table,
                                      const std::string& path, const std::string& prefix,
                                      std::set<std::string>& seen) {
  for (const auto& [key, node] : table) {
    if (prefix.empty() && key.str() == "policy") continue;  // handled by the caller
    const std::string name(key.str());
    const Knob* knob = find_knob(name);
    if (!knob) return with_prefix(toml_where(path, node), unknown_knob(prefix + name));
    if (!seen.insert(name).second) {
      return with_prefix(toml_where(path, node),
                         bad(prefix + name + ": also set at the top level"));
    }
    if (auto error = store(policy, *knob, from_toml(node, knob->info.type), true)) {
      return with_prefix(toml_where(path, node), bad(prefix + error->message));
    }
  }
  return std::nullopt;
}

Result<toml::table> parse_toml_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return bad(path + ": cannot read config file (missing or not a regular file)");
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) return bad(path + ": cannot read config file");
  try {
    return toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return bad(path + ":" + std::to_string(e.source().begin.line) + ": " +
               std::string(e.description()));
  } catch (const std::exception& e) {  // toml++ may throw bad_alloc; nothing may escape
    return bad(path + ": " + e.what());
  }
}

// A knob given both at the top level and in [policy] is rejected rather than resolved: it
// is almost always a leftover line, and silently preferring one would hide the mistake.
std::optional<Error> load_toml(Policy& policy, const std::string& path) {
  auto table = parse_toml_file(path);
  if (!table) return table.error();
  std::set<std::string> seen;
  if (auto error = apply_toml_table(policy, *table, path, "", seen)) return error;
  const toml::node* section = table->get("policy");
  if (!section) return std::nullopt;
  if (!section->is_table()) {
    return with_prefix(toml_where(path, *section), bad("policy: must be a table"));
  }
  return apply_toml_table(policy, *section->as_table(), path, "policy.", seen);
}

std::string env_name(std::string_view knob) {
  std::string name = "RESPAWN_";
  for (char c : knob) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

std::string flag_name(std::string_view knob) {
  std::string name = "--";
  for (char c : knob) name += c == '_' ? '-' : c;
  return name;
}

}  // namespace

const std::vector<KnobInfo>& policy_knobs() {
  static const std::vector<KnobInfo> knobs = [] {
    std::vector<KnobInfo> out;
    for (const Knob& knob : kKnobs) out.push_back(knob.info);
    return out;
  }();
  return knobs;
}

nlohmann::json to_json(const Policy& policy) {
  nlohmann::json out = nlohmann::json::object();
  for (const Knob& knob : kKnobs) {
    const std::string name(knob.info.name);
    if (knob.uint_field) {
      out[name] = policy.*knob.uint_field;
    } else {
      out[name] = policy.*knob.bool_field;
    }
  }
  return out;
}

// Also re-checks every range: a Policy built in code never went through store().
std::optional<Error> validate(const Policy& policy) {
  for (const Knob& knob : kKnobs) {
    if (!knob.uint_field) continue;
    const std::uint64_t n = policy.*knob.uint_field;
    if (n < knob.info.min || n > knob.info.max) return expected(knob, false);
  }
  if (policy.restart_backoff_max_ms < policy.restart_backoff_ms) {
    return bad("restart_backoff_max_ms must be at least restart_backoff_ms (" +
               std::to_string(policy.restart_backoff_ms) + ")");
  }
  return std::nullopt;
}

Result<Policy> apply_json(const Policy& base, const nlohmann::json& patch) {
  if (!patch.is_object()) return bad("policy patch must be a JSON object");
  Policy policy = base;  // all or nothing: base is untouched until every field passed
  for (const auto& [name, value] : patch.items()) {
    const Knob* knob = find_knob(name);
    if (!knob) return unknown_knob(name);
    if (auto error = store(policy, *knob, from_json(value, knob->info.type), false)) {
      return *error;
    }
  }
  if (auto error = validate(policy)) return *error;
  return policy;
}

Result<Policy> apply_string(const Policy& base, std::string_view knob, std::string_view value) {
  Policy policy = base;
  if (auto error = set_from_string(policy, knob, value)) return *error;
  if (auto error = validate(policy)) return *error;
  return policy;
}

Result<Policy> apply_toml_file(const Policy& base, const std::string& path) {
  Policy policy = base;
  if (auto error = load_toml(policy, path)) return *error;
  if (auto error = validate(policy)) return with_prefix(path + ": ", *error);
  return policy;
}

Result<Policy> resolve_policy(const std::string& config_path,
                              const std::map<std::string, std::string>& env,
                              const std::map<std::string, std::string>& flags) {
  Policy policy;
  if (!config_path.empty()) {
    if (auto error = load_toml(policy, config_path)) return *error;
  }
  for (const Knob& knob : kKnobs) {
    const std::string name = env_name(knob.info.name);
    const auto it = env.find(name);
    if (it == env.end()) continue;
    if (auto error = set_from_string(policy, knob.info.name, it->second)) {
      return with_prefix(name + ": ", *error);
    }
  }
  for (const auto& [name, value] : flags) {
    if (auto error = set_from_string(policy, name, value)) {
      return with_prefix(flag_name(name) + ": ", *error);
    }
  }
  if (auto error = validate(policy)) return *error;
  return policy;
}

std::map<std::string, std::string> environment_map() {
  std::map<std::string, std::string> out;
  for (char** entry = environ; entry && *entry; ++entry) {
    const std::string_view text(*entry);
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) continue;
    // emplace keeps the first of duplicate names, as getenv() does.
    out.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return out;
}

}  // namespace respawn
