#include "respawn/policy.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace respawn {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

const KnobInfo& knob(std::string_view name) {
  for (const KnobInfo& info : policy_knobs()) {
    if (info.name == name) return info;
  }
  throw std::runtime_error("no knob " + std::string(name));
}

TEST(Policy, DefaultsAreTheDocumentedOnesAndValid) {
  const json j = to_json(Policy{});
  EXPECT_EQ(j["max_requests"], 0u);
  EXPECT_EQ(j["max_requests_jitter"], 0u);
  EXPECT_EQ(j["max_worker_age_s"], 0u);
  EXPECT_EQ(j["max_worker_rss_mb"], 0u);
  EXPECT_EQ(j["max_gpu_memory_mb"], 0u);
  EXPECT_EQ(j["request_timeout_ms"], 120000u);
  EXPECT_EQ(j["hang_timeout_ms"], 30000u);
  EXPECT_EQ(j["load_timeout_ms"], 120000u);
  EXPECT_EQ(j["replay_limit"], 1u);
  EXPECT_EQ(j["poison_threshold"], 2u);
  EXPECT_EQ(j["restart_backoff_ms"], 100u);
  EXPECT_EQ(j["restart_backoff_max_ms"], 5000u);
  EXPECT_EQ(j["crash_loop_failures"], 5u);
  EXPECT_EQ(j["crash_loop_window_s"], 60u);
  EXPECT_EQ(j["crash_loop_cooldown_s"], 30u);
  EXPECT_EQ(j["prestart_spare"], false);
  EXPECT_EQ(j["drain_timeout_ms"], 30000u);
  EXPECT_EQ(j["max_batch_size"], 8u);
  EXPECT_EQ(j["max_batch_delay_us"], 1000u);
  EXPECT_EQ(j["empty_cache_after_request"], true);
  EXPECT_EQ(j["quarantine_ttl_s"], 3600u);
  EXPECT_EQ(j["fork_server"], true);
  EXPECT_EQ(j.size(), 22u);
  EXPECT_FALSE(validate(Policy{}).has_value());
}

TEST(Policy, KnobTableListsEveryFieldInStructOrder) {
  const std::vector<std::string> expected = {"max_requests",
                                             "max_requests_jitter",
                                             "max_worker_age_s",
                                             "max_worker_rss_mb",
                                             "max_gpu_memory_mb",
                                             "request_timeout_ms",
                                             "hang_timeout_ms",
                                             "load_timeout_ms",
                                             "replay_limit",
                                             "poison_threshold",
                                             "quarantine_ttl_s",
                                             "restart_backoff_ms",
                                             "restart_backoff_max_ms",
                                             "crash_loop_failures",
                                             "crash_loop_window_s",
                                             "crash_loop_cooldown_s",
                                             "prestart_spare",
                                             "drain_timeout_ms",
                                             "max_batch_size",
                                             "max_batch_delay_us",
                                             "empty_cache_after_request",
                                             "fork_server"};
  std::vector<std::string> names;
  for (const KnobInfo& info : policy_knobs()) {
    names.emplace_back(info.name);
    EXPECT_FALSE(info.help.empty()) << info.name;
    const bool boolean = info.name == "prestart_spare" ||
                         info.name == "empty_cache_after_request" || info.name == "fork_server";
    EXPECT_EQ(info.type, boolean ? KnobType::boolean : KnobType::uint);
    if (info.type == KnobType::uint) {
      EXPECT_LE(info.min, info.max) << info.name;
    }
  }
  EXPECT_EQ(names, expected);
  EXPECT_EQ(knob("hang_timeout_ms").min, 100u);  // hang detection cannot be switched off
  EXPECT_EQ(knob("request_timeout_ms").min, 0u);
  EXPECT_EQ(knob("replay_limit").max, 10u);
}

TEST(Policy, JsonUsesUnsignedNumbersAndBooleans) {
  const json j = to_json(Policy{});  // items() must not outlive the json it walks
  for (const auto& [name, value] : j.items()) {
    if (name == "prestart_spare" || name == "empty_cache_after_request" || name == "fork_server") {
      EXPECT_TRUE(value.is_boolean());
    } else {
      EXPECT_TRUE(value.is_number_unsigned()) << name;
    }
  }
}

// Each knob alone: the patch changes that key in to_json and nothing else, and to_json's
// output applied to a default policy reproduces it.
TEST(Policy, EveryKnobRoundTripsThroughJson) {
  const json defaults = to_json(Policy{});
  for (const KnobInfo& info : policy_knobs()) {
    const std::string name(info.name);
    json value = info.type == KnobType::boolean ? json(!defaults[name].get<bool>())
                                                : json(defaults[name].get<std::uint64_t>() + 1);
    auto patched = apply_json(Policy{}, json{{name, value}});
    ASSERT_TRUE(patched.ok()) << name << ": " << patched.error().message;
    json expected = defaults;
    expected[name] = value;
    EXPECT_EQ(to_json(*patched), expected) << name;
    auto again = apply_json(Policy{}, to_json(*patched));
    ASSERT_TRUE(again.ok()) << name;
    EXPECT_EQ(to_json(*again), expected) << name;
  }
}

// Distinct values everywhere, read back through the struct's members: catches a table row
// that points at the wrong field.
TEST(Policy, KnobsSetTheFieldOfTheirName) {
  json patch = json::object();
  std::uint64_t index = 0;
  for (const KnobInfo& info : policy_knobs()) {
    ++index;  // min + index is in range for every knob and distinct across them
    if (info.type == KnobType::boolean) {
      patch[std::string(info.name)] = true;
    } else {
      patch[std::string(info.name)] = info.min + index;
    }
  }
  auto p = apply_json(Policy{}, patch);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->max_requests, 1u);
  EXPECT_EQ(p->max_requests_jitter, 2u);
  EXPECT_EQ(p->max_worker_age_s, 3u);
  EXPECT_EQ(p->max_worker_rss_mb, 4u);
  EXPECT_EQ(p->max_gpu_memory_mb, 5u);
  EXPECT_EQ(p->request_timeout_ms, 6u);
  EXPECT_EQ(p->hang_timeout_ms, 107u);
  EXPECT_EQ(p->load_timeout_ms, 108u);
  EXPECT_EQ(p->replay_limit, 9u);
  EXPECT_EQ(p->poison_threshold, 11u);
  EXPECT_EQ(p->quarantine_ttl_s, 11u);
  EXPECT_EQ(p->restart_backoff_ms, 13u);
  EXPECT_EQ(p->restart_backoff_max_ms, 14u);
  EXPECT_EQ(p->crash_loop_failures, 15u);
  EXPECT_EQ(p->crash_loop_window_s, 16u);
  EXPECT_EQ(p->crash_loop_cooldown_s, 17u);
  EXPECT_TRUE(p->prestart_spare);
  EXPECT_EQ(p->drain_timeout_ms, 18u);
}

TEST(Policy, ValidateChecksTheBackoffOrder) {
  Policy p;
  p.restart_backoff_max_ms = 50;
  auto error = validate(p);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind, ErrorKind::bad_input);
  EXPECT_EQ(error->message, "restart_backoff_max_ms must be at least restart_backoff_ms (100)");
  p.restart_backoff_max_ms = 100;  // equal is fine: a constant backoff
  EXPECT_FALSE(validate(p).has_value());
}

TEST(Policy, ValidateRechecksRangesOfPoliciesBuiltInCode) {
  Policy p;
  p.hang_timeout_ms = 0;
  auto error = validate(p);
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(starts_with(error->message, "hang_timeout_ms: ")) << error->message;
}

TEST(Policy, PatchMustBeAnObjectOfKnownKnobs) {
  for (const json& patch : {json::array(), json(3), json("x"), json(nullptr)}) {
    auto r = apply_json(Policy{}, patch);
    ASSERT_FALSE(r.ok()) << patch.dump();
    EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
  }
  auto r = apply_json(Policy{}, json{{"unknown_knob", 1}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "unknown_knob: not a policy knob");
  EXPECT_TRUE(apply_json(Policy{}, json::object()).ok());
}

TEST(Policy, PatchRejectsWrongJsonTypes) {
  const std::string uint_message = "max_requests: must be an integer between 0 and 1000000000000";
  for (const json& bad : {json(1.5), json(2.0), json("3"), json(-1), json(true), json(nullptr),
                          json::array({1}), json::parse("1e30")}) {
    auto r = apply_json(Policy{}, json{{"max_requests", bad}});
    ASSERT_FALSE(r.ok()) << bad.dump();
    EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
    EXPECT_EQ(r.error().message, uint_message) << bad.dump();
  }
  for (const json& bad : {json(1), json(0), json("true"), json(nullptr)}) {
    auto r = apply_json(Policy{}, json{{"prestart_spare", bad}});
    ASSERT_FALSE(r.ok()) << bad.dump();
    EXPECT_TRUE(starts_with(r.error().message, "prestart_spare: ")) << r.error().message;
  }
  // Both signed and unsigned JSON integers are fine when non-negative.
  EXPECT_TRUE(apply_json(Policy{}, json{{"max_requests", 5}}).ok());
  EXPECT_TRUE(apply_json(Policy{}, json::parse(R"({"max_requests": 5})")).ok());
}

TEST(Policy, PatchRejectsValuesOutOfRange) {
  auto over = apply_json(Policy{}, json{{"replay_limit", 11}});
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().message, "replay_limit: must be an integer between 0 and 10");
  auto under = apply_json(Policy{}, json{{"hang_timeout_ms", 99}});
  ASSERT_FALSE(under.ok());
  EXPECT_EQ(under.error().message, "hang_timeout_ms: must be an integer between 100 and 86400000");
  EXPECT_FALSE(apply_json(Policy{}, json{{"poison_threshold", 0}}).ok());
  EXPECT_TRUE(apply_json(Policy{}, json{{"replay_limit", 10}}).ok());
  EXPECT_TRUE(apply_json(Policy{}, json{{"hang_timeout_ms", 100}}).ok());
  EXPECT_TRUE(apply_json(Policy{}, json{{"max_requests", 1000000000000ull}}).ok());
  EXPECT_FALSE(apply_json(Policy{}, json{{"max_requests", 1000000000001ull}}).ok());
}

TEST(Policy, PatchIsAllOrNothing) {
  Policy base;
  base.max_requests = 7;
  const json before = to_json(base);
  // nlohmann sorts keys, so the good field is applied to the copy before the bad one fails.
  auto r = apply_json(base, json{{"max_requests", 10}, {"replay_limit", 11}});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(starts_with(r.error().message, "replay_limit: ")) << r.error().message;
  EXPECT_EQ(to_json(base), before);
  EXPECT_EQ(base.max_requests, 7u);
}

TEST(Policy, PatchRunsTheCrossFieldCheck) {
  auto r = apply_json(Policy{}, json{{"restart_backoff_ms", 6000}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "restart_backoff_max_ms must be at least restart_backoff_ms (6000)");
  auto both =
      apply_json(Policy{}, json{{"restart_backoff_ms", 6000}, {"restart_backoff_max_ms", 9000}});
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ(both->restart_backoff_ms, 6000u);
}

TEST(Policy, ApplyStringParsesDecimalIntegers) {
  auto r = apply_string(Policy{}, "max_requests", "42");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->max_requests, 42u);
  EXPECT_EQ(apply_string(Policy{}, "max_requests", "0")->max_requests, 0u);
  EXPECT_EQ(apply_string(Policy{}, "max_requests", "007")->max_requests, 7u);
  EXPECT_EQ(apply_string(Policy{}, "max_requests", "1000000000000")->max_requests, 1000000000000u);
  for (const char* bad : {"-1", "1.5", "", " 3", "3 ", "+3", "0x10", "1e3", "abc",
                          "99999999999999999999999", "18446744073709551616", "1000000000001"}) {
    auto e = apply_string(Policy{}, "max_requests", bad);
    ASSERT_FALSE(e.ok()) << '"' << bad << '"';
    EXPECT_EQ(e.error().message, "max_requests: must be an integer between 0 and 1000000000000");
  }
}

TEST(Policy, ApplyStringParsesBooleanWords) {
  for (const char* yes : {"true", "TRUE", "On", "yes", "YES", "1"}) {
    auto r = apply_string(Policy{}, "prestart_spare", yes);
    ASSERT_TRUE(r.ok()) << yes;
    EXPECT_TRUE(r->prestart_spare) << yes;
  }
  Policy on;
  on.prestart_spare = true;
  for (const char* no : {"false", "False", "OFF", "no", "No", "0"}) {
    auto r = apply_string(on, "prestart_spare", no);
    ASSERT_TRUE(r.ok()) << no;
    EXPECT_FALSE(r->prestart_spare) << no;
  }
  for (const char* bad : {"", "2", "y", "truee", " true", "enabled"}) {
    auto r = apply_string(Policy{}, "prestart_spare", bad);
    ASSERT_FALSE(r.ok()) << '"' << bad << '"';
    EXPECT_TRUE(starts_with(r.error().message, "prestart_spare: ")) << r.error().message;
  }
}

TEST(Policy, ApplyStringRejectsUnknownKnobsAndBadCombinations) {
  auto unknown = apply_string(Policy{}, "max_request", "3");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message, "max_request: not a policy knob");
  auto crossed = apply_string(Policy{}, "restart_backoff_max_ms", "50");
  ASSERT_FALSE(crossed.ok());
  EXPECT_EQ(crossed.error().message,
            "restart_backoff_max_ms must be at least restart_backoff_ms (100)");
}

TEST(Policy, EnvironmentMapReadsTheProcessEnvironment) {
  ASSERT_EQ(setenv("RESPAWN_TEST_POLICY_ENV", "a=b", 1), 0);
  const auto env = environment_map();
  unsetenv("RESPAWN_TEST_POLICY_ENV");
  ASSERT_EQ(env.count("RESPAWN_TEST_POLICY_ENV"), 1u);
  EXPECT_EQ(env.at("RESPAWN_TEST_POLICY_ENV"), "a=b");  // split at the first '='
  EXPECT_EQ(environment_map().count("RESPAWN_TEST_POLICY_ENV"), 0u);
}

// Files live in a per-test directory that is removed afterwards.
class PolicyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("respawn_policy_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& text, const std::string& name = "respawn.toml") {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  Result<Policy> load(const std::string& text) { return apply_toml_file(Policy{}, write(text)); }

  fs::path dir_;
};

TEST_F(PolicyFileTest, ReadsKnobsAtTheTopLevel) {
  auto r = load("max_requests = 1000\nprestart_spare = true\nhang_timeout_ms = 5000\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->max_requests, 1000u);
  EXPECT_TRUE(r->prestart_spare);
  EXPECT_EQ(r->hang_timeout_ms, 5000u);
  EXPECT_EQ(r->replay_limit, 1u);  // untouched
}

TEST_F(PolicyFileTest, ReadsKnobsInAPolicyTableAndMixedWithTopLevel) {
  auto r = load("max_requests = 10\n[policy]\nreplay_limit = 3\nprestart_spare = \"on\"\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->max_requests, 10u);
  EXPECT_EQ(r->replay_limit, 3u);
  EXPECT_TRUE(r->prestart_spare);
  EXPECT_TRUE(load("").ok());  // an empty file changes nothing
}

TEST_F(PolicyFileTest, RejectsAKnobSetBothAtTopLevelAndInPolicy) {
  auto r = load("max_requests = 10\n[policy]\nmax_requests = 20\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("policy.max_requests"), std::string::npos) << r.error().message;
}

TEST_F(PolicyFileTest, RejectsUnknownKeysNamingThem) {
  const std::string path = write("max_requests = 1\nmax_request = 5\n");
  auto top = apply_toml_file(Policy{}, path);
  ASSERT_FALSE(top.ok());
  EXPECT_EQ(top.error().message, path + ":2: max_request: not a policy knob");
  auto inner = load("[policy]\nhang_timeout = 5000\n");
  ASSERT_FALSE(inner.ok());
  EXPECT_NE(inner.error().message.find("policy.hang_timeout: not a policy knob"), std::string::npos)
      << inner.error().message;
  auto section = load("[server]\nport = 80\n");
  ASSERT_FALSE(section.ok());
  EXPECT_NE(section.error().message.find("server: not a policy knob"), std::string::npos);
  auto scalar = load("policy = 3\n");
  ASSERT_FALSE(scalar.ok());
  EXPECT_NE(scalar.error().message.find("policy: must be a table"), std::string::npos);
}

TEST_F(PolicyFileTest, RejectsWrongTypesAndRanges) {
  for (const char* text : {"max_requests = -1\n", "max_requests = 1.5\n", "max_requests = \"3\"\n",
                           "max_requests = true\n", "max_requests = 1000000000001\n"}) {
    auto r = load(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message.find(":1: max_requests: must be an integer between 0 and "),
              std::string::npos)
        << r.error().message;
  }
  for (const char* text : {"prestart_spare = 1\n", "prestart_spare = \"maybe\"\n"}) {
    auto r = load(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message.find("prestart_spare: "), std::string::npos);
  }
  auto crossed = load("restart_backoff_ms = 9000\n");
  ASSERT_FALSE(crossed.ok());
  EXPECT_NE(crossed.error().message.find("restart_backoff_max_ms must be at least"),
            std::string::npos);
}

TEST_F(PolicyFileTest, SyntaxErrorNamesThePathAndLine) {
  const std::string path = write("max_requests = 1\n\nreplay_limit = = 2\n");
  auto r = apply_toml_file(Policy{}, path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
  EXPECT_TRUE(starts_with(r.error().message, path + ":3: ")) << r.error().message;
}

TEST_F(PolicyFileTest, MissingOrUnreadableFileNamesThePath) {
  const std::string missing = (dir_ / "nope.toml").string();
  auto r = apply_toml_file(Policy{}, missing);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(starts_with(r.error().message, missing + ": ")) << r.error().message;
  auto d = apply_toml_file(Policy{}, dir_.string());
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(starts_with(d.error().message, dir_.string() + ": ")) << d.error().message;
}

TEST_F(PolicyFileTest, PrecedenceIsFlagThenEnvThenFileThenDefault) {
  const std::string path = write("max_requests = 10\n");
  const std::map<std::string, std::string> env = {{"RESPAWN_MAX_REQUESTS", "20"},
                                                  {"UNRELATED", "x"}};
  const std::map<std::string, std::string> flags = {{"max_requests", "30"}};
  auto all = resolve_policy(path, env, flags);
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_EQ(all->max_requests, 30u);
  EXPECT_EQ(resolve_policy(path, env, {})->max_requests, 20u);
  EXPECT_EQ(resolve_policy(path, {}, {})->max_requests, 10u);
  EXPECT_EQ(resolve_policy("", {}, {})->max_requests, 0u);
  EXPECT_EQ(resolve_policy("", env, {})->max_requests, 20u);
}

TEST_F(PolicyFileTest, ResolveErrorsSayWhereTheValueCameFrom) {
  auto env = resolve_policy("", {{"RESPAWN_MAX_REQUESTS", "-1"}}, {});
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.error().message,
            "RESPAWN_MAX_REQUESTS: max_requests: must be an integer between 0 and 1000000000000");
  auto flag = resolve_policy("", {}, {{"prestart_spare", "maybe"}});
  ASSERT_FALSE(flag.ok());
  EXPECT_TRUE(starts_with(flag.error().message, "--prestart-spare: prestart_spare: "))
      << flag.error().message;
  auto unknown = resolve_policy("", {}, {{"max_reqs", "1"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("max_reqs: not a policy knob"), std::string::npos);
  const std::string missing = (dir_ / "missing.toml").string();
  auto file = resolve_policy(missing, {}, {});
  ASSERT_FALSE(file.ok());
  EXPECT_TRUE(starts_with(file.error().message, missing + ": "));
}

// The cross-field check runs on the final policy, so sources may each set half of a pair.
TEST_F(PolicyFileTest, ResolveChecksCrossFieldRulesOnTheResult) {
  const std::string path = write("restart_backoff_ms = 10000\n");
  auto ok = resolve_policy(path, {}, {{"restart_backoff_max_ms", "20000"}});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->restart_backoff_ms, 10000u);
  EXPECT_EQ(ok->restart_backoff_max_ms, 20000u);
  auto bad = resolve_policy(path, {{"RESPAWN_RESTART_BACKOFF_MAX_MS", "9000"}}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message,
            "restart_backoff_max_ms must be at least restart_backoff_ms (10000)");
}

}  // namespace
}  // namespace respawn
