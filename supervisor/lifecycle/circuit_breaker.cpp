#include "lifecycle/circuit_breaker.hpp"

namespace respawn {

bool CircuitBreaker::on_failure(Clock::time_point now) {
  if (open_) {
    // A failed half-open probe sends the breaker back to open for another cooldown.
    if (now < open_until_) return false;
    open_until_ = now + limits_.cooldown;
    return true;
  }
  recent_.push_back(now);
  while (!recent_.empty() && now - recent_.front() > limits_.window) recent_.pop_front();
  if (recent_.size() < limits_.failures) return false;
  open_ = true;
  open_until_ = now + limits_.cooldown;
  recent_.clear();
  return true;
}

void CircuitBreaker::on_ready() {
  open_ = false;
  recent_.clear();
}

CircuitBreaker::State CircuitBreaker::state(Clock::time_point now) const {
  if (!open_) return State::closed;
  return now < open_until_ ? State::open : State::half_open;
}

std::string_view to_string(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::closed:
      return "closed";
    case CircuitBreaker::State::open:
      return "open";
    case CircuitBreaker::State::half_open:
      return "half_open";
  }
  return "closed";
}

}  // namespace respawn
