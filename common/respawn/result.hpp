#pragma once
// Status and Result<T> for domain code: an error kind the HTTP layer maps to a status code,
// plus a message meant for the client. Header-only, no dependencies, thread-compatible.
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace respawn {

enum class ErrorKind {
  bad_input,      // the request is wrong: 400
  not_found,      // unknown model or route: 404
  too_large,      // body or frame over a limit: 413
  unavailable,    // not ready, queue full, OOM: 503 + Retry-After
  timeout,        // past its deadline: 504
  worker_failed,  // the worker died under the request: 502
  internal,       // a bug or an unexpected model failure: 500
  cancelled,      // the client went away: 499 (nginx's "client closed request"; for metrics)
};

std::string_view to_string(ErrorKind kind);

struct Error {
  ErrorKind kind = ErrorKind::internal;
  std::string message;
  unsigned retry_after_s = 0;  // for unavailable: when to try again (0 = the default, 1 s)
  long worker_pid = 0;         // the worker that answered with this error; 0: the supervisor
};

// Either a T or an E. Deliberately small: construct from either, test with ok().
template <typename T, typename E = Error>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(E error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

inline Error make_error(ErrorKind kind, std::string message) {
  return Error{kind, std::move(message), 0};
}

inline std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::bad_input:
      return "bad_input";
    case ErrorKind::not_found:
      return "not_found";
    case ErrorKind::too_large:
      return "too_large";
    case ErrorKind::unavailable:
      return "unavailable";
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::worker_failed:
      return "worker_failed";
    case ErrorKind::internal:
      return "internal";
    case ErrorKind::cancelled:
      return "cancelled";
  }
  return "internal";
}

}  // namespace respawn
