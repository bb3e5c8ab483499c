// Tests for fault-injection spec parsing (common/respawn/fault.hpp).
#include "respawn/fault.hpp"

#include <limits>
#include <string>
#include <utility>

#include <gtest/gtest.h>

namespace respawn {
namespace {

using K = Fault::Kind;

void expect_fault(std::string_view spec, K kind, unsigned ms) {
  const auto fault = parse_fault(spec);
  ASSERT_TRUE(fault.has_value()) << "'" << spec << "'";
  EXPECT_EQ(fault->kind, kind) << "'" << spec << "'";
  EXPECT_EQ(fault->ms, ms) << "'" << spec << "'";
}

void expect_unknown(std::string_view spec) {
  const auto fault = parse_fault(spec);
  EXPECT_FALSE(fault.has_value()) << "'" << spec << "' parsed as kind "
                                  << static_cast<int>(fault->kind) << " ms " << fault->ms;
}

TEST(Fault, PlainNames) {
  const std::pair<const char*, K> names[] = {
      {"crash", K::crash},
      {"hang", K::hang},
      {"oom", K::oom},
      {"oom_fatal", K::oom_fatal},
      {"cuda_error", K::cuda_error},
      {"illegal_memory_access", K::illegal_memory_access},
      {"malformed", K::malformed},
      {"fail_load", K::fail_load},
      {"crash_on_load", K::crash_on_load},
  };
  for (const auto& [name, kind] : names) expect_fault(name, kind, 0);
}

TEST(Fault, SlowWithMilliseconds) {
  expect_fault("slow:0", K::slow, 0);
  expect_fault("slow:1", K::slow, 1);
  expect_fault("slow:250", K::slow, 250);
  expect_fault("slow:60000", K::slow, 60000);
  expect_fault("slow:007", K::slow, 7);
  expect_fault("slow:4294967295", K::slow, std::numeric_limits<unsigned>::max());
}

TEST(Fault, SlowLoadWithMilliseconds) {
  expect_fault("slow_load:0", K::slow_load, 0);
  expect_fault("slow_load:5", K::slow_load, 5);
  expect_fault("slow_load:1500", K::slow_load, 1500);
  expect_fault("slow_load:0100", K::slow_load, 100);
  expect_fault("slow_load:4294967295", K::slow_load, std::numeric_limits<unsigned>::max());
}

TEST(Fault, SlowNeedsMilliseconds) {
  for (const char* spec : {"slow", "slow:", "slow_load", "slow_load:"}) expect_unknown(spec);
}

TEST(Fault, SlowRejectsNonDigits) {
  for (const char* spec : {
           "slow:abc",
           "slow:-1",
           "slow:-0",
           "slow:+5",
           "slow: 5",
           "slow:x5",
           "slow:0x10",
           "slow:1e3",
           "slow_load:abc",
           "slow_load:-1",
           "slow_load:+5",
           "slow_load: 5",
       }) {
    expect_unknown(spec);
  }
}

TEST(Fault, SlowRejectsTrailingJunk) {
  for (const char* spec : {
           "slow:5x",
           "slow:5 ",
           "slow:5ms",
           "slow:1.5",
           "slow:5:6",
           "slow:5\n",
           "slow_load:5x",
           "slow_load:10 ",
           "slow_load:10ms",
           "slow_load:2.0",
       }) {
    expect_unknown(spec);
  }
  expect_unknown(std::string_view("slow:5\0", 7));
}

TEST(Fault, SlowRejectsOverflow) {
  for (const char* spec : {
           "slow:4294967296",
           "slow:99999999999",
           "slow:18446744073709551616",
           "slow:99999999999999999999999999",
           "slow_load:4294967296",
           "slow_load:99999999999999999999999999",
       }) {
    expect_unknown(spec);
  }
}

TEST(Fault, SlowLoadIsNotSlow) {
  // "slow_load:..." shares a prefix with "slow" but is its own start fault.
  expect_fault("slow_load:20", K::slow_load, 20);
  expect_fault("slow:20", K::slow, 20);
}

TEST(Fault, UnknownSpecs) {
  for (const char* spec : {
           "",
           " ",
           "CRASH",
           "Crash",
           "crash ",
           " crash",
           "crash\n",
           "crashx",
           "crash:5",
           "hang:100",
           "oom:1",
           "oom_fatal2",
           "cuda",
           "cuda-error",
           "fail-load",
           "failload",
           "crash_on_load:1",
           "slowload:5",
           "slow-load:5",
           "SLOW:5",
           "slow=5",
           "fast:5",
           "none",
           "crash,hang",
       }) {
    expect_unknown(spec);
  }
  expect_unknown(std::string_view("crash\0", 6));
  expect_unknown(std::string_view("hang\0x", 6));
}

TEST(Fault, StartFaults) {
  EXPECT_TRUE(is_start_fault(Fault{K::fail_load, 0}));
  EXPECT_TRUE(is_start_fault(Fault{K::crash_on_load, 0}));
  EXPECT_TRUE(is_start_fault(Fault{K::slow_load, 0}));
  EXPECT_TRUE(is_start_fault(Fault{K::slow_load, 1000}));
}

TEST(Fault, RequestFaultsAreNotStartFaults) {
  for (K kind : {K::crash, K::hang, K::oom, K::oom_fatal, K::cuda_error, K::illegal_memory_access,
                 K::malformed, K::slow}) {
    EXPECT_FALSE(is_start_fault(Fault{kind, 0})) << static_cast<int>(kind);
  }
  EXPECT_FALSE(is_start_fault(Fault{K::slow, 1000}));
}

TEST(Fault, ParsedSpecsAgreeWithIsStartFault) {
  for (const char* spec : {"fail_load", "crash_on_load", "slow_load:3"}) {
    const auto fault = parse_fault(spec);
    ASSERT_TRUE(fault.has_value()) << spec;
    EXPECT_TRUE(is_start_fault(*fault)) << spec;
  }
  for (const char* spec : {"crash", "hang", "oom", "oom_fatal", "cuda_error",
                           "illegal_memory_access", "malformed", "slow:3"}) {
    const auto fault = parse_fault(spec);
    ASSERT_TRUE(fault.has_value()) << spec;
    EXPECT_FALSE(is_start_fault(*fault)) << spec;
  }
}

}  // namespace
}  // namespace respawn
