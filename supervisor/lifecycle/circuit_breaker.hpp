#pragma once
// The crash-loop circuit breaker. Closed: workers start as usual. After `failures` unplanned
// worker failures within `window` with no worker becoming ready in between, it opens: no worker
// starts, readiness is off, and requests fail fast until `cooldown` has passed. (A worker that
// comes up and is later killed is not a crash loop: replay covers its requests, and counting it
// would turn an occasional crash under load into minutes of 503s.) Then it is half-open: one probe
// worker may start; if that worker becomes ready the breaker closes, if it fails the breaker opens
// again. Pure logic over explicit time points so it is unit-testable. Not thread-safe.
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <string_view>

namespace respawn {

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State { closed, open, half_open };

  struct Limits {
    std::uint64_t failures = 5;
    std::chrono::seconds window{60};
    std::chrono::seconds cooldown{30};
  };

  void set_limits(const Limits& limits) { limits_ = limits; }
  // Records an unplanned failure; returns true if this opened (or re-opened) the breaker.
  bool on_failure(Clock::time_point now);
  void on_ready();  // a worker became ready: a half-open breaker closes
  // The state at `now` (an open breaker whose cooldown passed reads half_open).
  State state(Clock::time_point now) const;
  // Until when it stays open (meaningful while open).
  Clock::time_point open_until() const { return open_until_; }

 private:
  Limits limits_;
  std::deque<Clock::time_point> recent_;
  bool open_ = false;
  Clock::time_point open_until_{};
};

inline constexpr std::array kAllBreakerStates = {
    CircuitBreaker::State::closed, CircuitBreaker::State::open, CircuitBreaker::State::half_open};
std::string_view to_string(CircuitBreaker::State state);

}  // namespace respawn
