// Tests for the crash-loop circuit breaker (supervisor/lifecycle/circuit_breaker.hpp).
#include "lifecycle/circuit_breaker.hpp"

#include <chrono>

#include <gtest/gtest.h>

namespace respawn {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using State = CircuitBreaker::State;
using TimePoint = CircuitBreaker::Clock::time_point;

const TimePoint t0 = TimePoint{} + seconds(1000);

CircuitBreaker make_breaker(std::uint64_t failures, seconds window, seconds cooldown) {
  CircuitBreaker b;
  b.set_limits({failures, window, cooldown});
  return b;
}

TEST(CircuitBreaker, DefaultLimits) {
  const CircuitBreaker::Limits limits;
  EXPECT_EQ(limits.failures, 5u);
  EXPECT_EQ(limits.window, seconds(60));
  EXPECT_EQ(limits.cooldown, seconds(30));
}

TEST(CircuitBreaker, StartsClosed) {
  const CircuitBreaker b;
  EXPECT_EQ(b.state(t0), State::closed);
  EXPECT_EQ(b.state(TimePoint{}), State::closed);
  EXPECT_EQ(b.state(t0 + seconds(100000)), State::closed);
}

TEST(CircuitBreaker, DefaultLimitsOpenOnTheFifthFailure) {
  CircuitBreaker b;
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(b.on_failure(t0 + seconds(i))) << i;
    EXPECT_EQ(b.state(t0 + seconds(i)), State::closed) << i;
  }
  EXPECT_TRUE(b.on_failure(t0 + seconds(4)));
  EXPECT_EQ(b.state(t0 + seconds(4)), State::open);
  EXPECT_EQ(b.open_until(), t0 + seconds(4) + seconds(30));
}

TEST(CircuitBreaker, OpensOnTheNthFailureWithinTheWindow) {
  auto b = make_breaker(3, seconds(60), seconds(30));
  EXPECT_FALSE(b.on_failure(t0));
  EXPECT_EQ(b.state(t0), State::closed);
  EXPECT_FALSE(b.on_failure(t0 + seconds(10)));
  EXPECT_EQ(b.state(t0 + seconds(10)), State::closed);
  EXPECT_TRUE(b.on_failure(t0 + seconds(20)));
  EXPECT_EQ(b.state(t0 + seconds(20)), State::open);
  EXPECT_EQ(b.open_until(), t0 + seconds(50));
}

TEST(CircuitBreaker, SeveralFailuresAtTheSameInstantCount) {
  auto b = make_breaker(3, seconds(60), seconds(30));
  EXPECT_FALSE(b.on_failure(t0));
  EXPECT_FALSE(b.on_failure(t0));
  EXPECT_TRUE(b.on_failure(t0));
  EXPECT_EQ(b.state(t0), State::open);
}

TEST(CircuitBreaker, OneFailureOpensWhenTheLimitIsOne) {
  auto b = make_breaker(1, seconds(60), seconds(5));
  EXPECT_TRUE(b.on_failure(t0));
  EXPECT_EQ(b.state(t0), State::open);
  EXPECT_EQ(b.open_until(), t0 + seconds(5));
}

TEST(CircuitBreaker, OldFailuresSlideOutOfTheWindow) {
  auto b = make_breaker(3, seconds(60), seconds(30));
  EXPECT_FALSE(b.on_failure(t0));
  EXPECT_FALSE(b.on_failure(t0 + seconds(30)));
  // t0 is now 61 s old: it no longer counts, so this is only the second failure.
  EXPECT_FALSE(b.on_failure(t0 + seconds(61)));
  EXPECT_EQ(b.state(t0 + seconds(61)), State::closed);
  // t0+30, t0+61 and t0+70 all lie within 60 s.
  EXPECT_TRUE(b.on_failure(t0 + seconds(70)));
  EXPECT_EQ(b.state(t0 + seconds(70)), State::open);
  EXPECT_EQ(b.open_until(), t0 + seconds(100));
}

TEST(CircuitBreaker, FailuresSpreadWiderThanTheWindowNeverOpen) {
  auto b = make_breaker(2, seconds(10), seconds(30));
  for (int i = 0; i < 20; ++i) {
    const TimePoint now = t0 + seconds(11 * i);
    EXPECT_FALSE(b.on_failure(now)) << i;
    EXPECT_EQ(b.state(now), State::closed) << i;
  }
}

TEST(CircuitBreaker, AFailureExactlyOneWindowOldStillCounts) {
  // Only failures older than the window slide out.
  auto b = make_breaker(2, seconds(10), seconds(30));
  EXPECT_FALSE(b.on_failure(t0));
  EXPECT_TRUE(b.on_failure(t0 + seconds(10)));
  EXPECT_EQ(b.state(t0 + seconds(10)), State::open);
}

TEST(CircuitBreaker, AFailureJustOverOneWindowOldSlidesOut) {
  auto b = make_breaker(2, seconds(10), seconds(30));
  EXPECT_FALSE(b.on_failure(t0));
  EXPECT_FALSE(b.on_failure(t0 + seconds(10) + milliseconds(1)));
  EXPECT_EQ(b.state(t0 + seconds(11)), State::closed);
}

TEST(CircuitBreaker, StaysOpenForTheCooldownThenReadsHalfOpen) {
  auto b = make_breaker(1, seconds(60), seconds(30));
  ASSERT_TRUE(b.on_failure(t0));
  const TimePoint until = t0 + seconds(30);
  EXPECT_EQ(b.open_until(), until);
  EXPECT_EQ(b.state(t0), State::open);
  EXPECT_EQ(b.state(t0 + seconds(15)), State::open);
  EXPECT_EQ(b.state(until - milliseconds(1)), State::open);
  EXPECT_EQ(b.state(until), State::half_open);
  EXPECT_EQ(b.state(until + seconds(1)), State::half_open);
  EXPECT_EQ(b.state(until + seconds(100000)), State::half_open);
}

TEST(CircuitBreaker, FailureWhileOpenNeitherExtendsNorReturnsTrue) {
  auto b = make_breaker(2, seconds(60), seconds(30));
  ASSERT_FALSE(b.on_failure(t0));
  ASSERT_TRUE(b.on_failure(t0 + seconds(1)));
  const TimePoint until = t0 + seconds(31);
  ASSERT_EQ(b.open_until(), until);
  for (int i = 2; i < 31; i += 4) {
    EXPECT_FALSE(b.on_failure(t0 + seconds(i))) << i;
    EXPECT_EQ(b.open_until(), until) << i;
    EXPECT_EQ(b.state(t0 + seconds(i)), State::open) << i;
  }
  EXPECT_FALSE(b.on_failure(until - milliseconds(1)));
  EXPECT_EQ(b.open_until(), until);
  EXPECT_EQ(b.state(until), State::half_open);
}

TEST(CircuitBreaker, FailureWhileHalfOpenReopens) {
  auto b = make_breaker(3, seconds(60), seconds(30));
  ASSERT_FALSE(b.on_failure(t0));
  ASSERT_FALSE(b.on_failure(t0));
  ASSERT_TRUE(b.on_failure(t0));
  const TimePoint probe = t0 + seconds(45);
  ASSERT_EQ(b.state(probe), State::half_open);
  // A single failed probe re-opens it: no need for `failures` failures again.
  EXPECT_TRUE(b.on_failure(probe));
  EXPECT_EQ(b.state(probe), State::open);
  EXPECT_EQ(b.open_until(), probe + seconds(30));
  EXPECT_EQ(b.state(probe + seconds(30) - milliseconds(1)), State::open);
  EXPECT_EQ(b.state(probe + seconds(30)), State::half_open);
}

TEST(CircuitBreaker, FailureExactlyAtTheEndOfTheCooldownReopens) {
  auto b = make_breaker(1, seconds(60), seconds(30));
  ASSERT_TRUE(b.on_failure(t0));
  const TimePoint until = t0 + seconds(30);
  ASSERT_EQ(b.state(until), State::half_open);
  EXPECT_TRUE(b.on_failure(until));
  EXPECT_EQ(b.open_until(), until + seconds(30));
  EXPECT_EQ(b.state(until), State::open);
}

TEST(CircuitBreaker, ReopensAgainAndAgainWhileProbesFail) {
  auto b = make_breaker(1, seconds(60), seconds(10));
  ASSERT_TRUE(b.on_failure(t0));
  TimePoint now = t0;
  for (int i = 0; i < 5; ++i) {
    now = b.open_until() + seconds(2);
    ASSERT_EQ(b.state(now), State::half_open) << i;
    EXPECT_TRUE(b.on_failure(now)) << i;
    EXPECT_EQ(b.open_until(), now + seconds(10)) << i;
    EXPECT_FALSE(b.on_failure(now + seconds(1))) << i;  // still open: no effect
    EXPECT_EQ(b.open_until(), now + seconds(10)) << i;
  }
}

TEST(CircuitBreaker, ReadyWhileHalfOpenCloses) {
  auto b = make_breaker(2, seconds(60), seconds(30));
  ASSERT_FALSE(b.on_failure(t0));
  ASSERT_TRUE(b.on_failure(t0));
  ASSERT_EQ(b.state(t0 + seconds(30)), State::half_open);
  b.on_ready();
  EXPECT_EQ(b.state(t0 + seconds(30)), State::closed);
  // Closed means closed at any time, including before the old open_until.
  EXPECT_EQ(b.state(t0), State::closed);
}

TEST(CircuitBreaker, ReadyForgetsEarlierFailures) {
  auto b = make_breaker(3, seconds(60), seconds(30));
  ASSERT_FALSE(b.on_failure(t0));
  ASSERT_FALSE(b.on_failure(t0 + seconds(1)));
  b.on_ready();
  // Within the window of the earlier two, but they were forgotten.
  EXPECT_FALSE(b.on_failure(t0 + seconds(2)));
  EXPECT_FALSE(b.on_failure(t0 + seconds(3)));
  EXPECT_EQ(b.state(t0 + seconds(3)), State::closed);
  EXPECT_TRUE(b.on_failure(t0 + seconds(4)));
  EXPECT_EQ(b.state(t0 + seconds(4)), State::open);
}

TEST(CircuitBreaker, AfterClosingItTakesTheFullCountToOpenAgain) {
  auto b = make_breaker(3, seconds(60), seconds(30));
  ASSERT_FALSE(b.on_failure(t0));
  ASSERT_FALSE(b.on_failure(t0));
  ASSERT_TRUE(b.on_failure(t0));
  const TimePoint probe = t0 + seconds(30);
  ASSERT_EQ(b.state(probe), State::half_open);
  b.on_ready();
  ASSERT_EQ(b.state(probe), State::closed);
  // A failure now is an ordinary closed-state failure, not a failed probe.
  EXPECT_FALSE(b.on_failure(probe + seconds(1)));
  EXPECT_EQ(b.state(probe + seconds(1)), State::closed);
  EXPECT_FALSE(b.on_failure(probe + seconds(2)));
  EXPECT_EQ(b.state(probe + seconds(2)), State::closed);
  EXPECT_TRUE(b.on_failure(probe + seconds(3)));
  EXPECT_EQ(b.state(probe + seconds(3)), State::open);
  EXPECT_EQ(b.open_until(), probe + seconds(33));
}

TEST(CircuitBreaker, ReadyWhileOpenCloses) {
  auto b = make_breaker(1, seconds(60), seconds(30));
  ASSERT_TRUE(b.on_failure(t0));
  ASSERT_EQ(b.state(t0 + seconds(1)), State::open);
  b.on_ready();
  EXPECT_EQ(b.state(t0 + seconds(1)), State::closed);
}

TEST(CircuitBreaker, ReadyWhileClosedStaysClosed) {
  auto b = make_breaker(1, seconds(60), seconds(30));
  b.on_ready();
  EXPECT_EQ(b.state(t0), State::closed);
  EXPECT_TRUE(b.on_failure(t0));  // limits still apply
}

TEST(CircuitBreaker, NewLimitsApplyToTheNextDecision) {
  CircuitBreaker b;
  b.set_limits({2, seconds(60), seconds(7)});
  ASSERT_FALSE(b.on_failure(t0));
  ASSERT_TRUE(b.on_failure(t0));
  EXPECT_EQ(b.open_until(), t0 + seconds(7));
  b.set_limits({2, seconds(60), seconds(99)});
  const TimePoint probe = t0 + seconds(7);
  ASSERT_EQ(b.state(probe), State::half_open);
  ASSERT_TRUE(b.on_failure(probe));
  EXPECT_EQ(b.open_until(), probe + seconds(99));
}

TEST(CircuitBreaker, StateNames) {
  EXPECT_EQ(to_string(State::closed), "closed");
  EXPECT_EQ(to_string(State::open), "open");
  EXPECT_EQ(to_string(State::half_open), "half_open");
}

}  // namespace
}  // namespace respawn
