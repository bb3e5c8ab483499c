#include "error_classifier.hpp"

#include <array>
#include <string>

namespace respawn::worker {
namespace {

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The first line only: libtorch appends a long C++ backtrace that clients need not see.
std::string first_line(std::string_view message) {
  return std::string(message.substr(0, message.find('\n')));
}

// CUDA errors after which the context is unusable: every later kernel fails too.
constexpr std::array<std::string_view, 6> kStickyCuda = {
    "illegal memory access", "device-side assert",  "unspecified launch failure",
    "misaligned address",    "illegal instruction", "CUDA error: an illegal",
};

}  // namespace

WorkerError classify_failure(ExceptionFamily family, std::string_view message) {
  WorkerError e;
  e.message = first_line(message);
  if (family == ExceptionFamily::out_of_memory || contains(message, "out of memory") ||
      contains(message, "CUBLAS_STATUS_ALLOC_FAILED") ||
      contains(message, "can't allocate memory") || contains(message, "not enough memory")) {
    e.kind = WorkerErrorKind::oom;
    return e;  // recoverable: the allocation failed, nothing else did
  }
  for (const auto sticky : kStickyCuda) {
    if (contains(message, sticky)) {
      e.kind = WorkerErrorKind::cuda_error;
      e.healthy = false;
      return e;
    }
  }
  if (contains(message, "CUDA error") || contains(message, "CUDNN_STATUS") ||
      contains(message, "CUBLAS_STATUS")) {
    // Unknown CUDA failures are treated as sticky: a fresh worker is cheap, a poisoned one isn't.
    e.kind = WorkerErrorKind::cuda_error;
    e.healthy = false;
    return e;
  }
  e.kind =
      family == ExceptionFamily::input ? WorkerErrorKind::bad_input : WorkerErrorKind::internal;
  return e;
}

}  // namespace respawn::worker
