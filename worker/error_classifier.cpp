#include "error_classifier.hpp"

#include <array>
#include <string>

namespace respawn::worker {
namespace {

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

template <std::size_t N>
bool contains_any(std::string_view haystack, const std::array<std::string_view, N>& needles) {
  for (const auto needle : needles) {
    if (contains(haystack, needle)) return true;
  }
  return false;
}

// The first line only: libtorch appends a long C++ backtrace that clients need not see.
std::string first_line(std::string_view message) {
  return std::string(message.substr(0, message.find('\n')));
}

// CUDA errors after which the context is unusable: every later kernel fails too, so only a new
// process helps. The CUDA runtime's sticky errors (cudaGetErrorString's words; a kernel faulted
// and CUDA reports it at some later call, e.g. "CUDA error: an illegal memory access was
// encountered"), the display watchdog killing a kernel (laptops), and cuBLAS/cuDNN kernels
// failing while they ran. Whole phrases: since PyTorch 2.1 every CUDA error message ends with
// "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.", so a bare
// "device-side assert" would make every CUDA error sticky.
constexpr std::array<std::string_view, 12> kStickyCuda = {
    "an illegal memory access was encountered",
    "device-side assert triggered",
    "unspecified launch failure",
    "misaligned address",
    "an illegal instruction was encountered",
    "the launch timed out and was terminated",
    "uncorrectable ECC error",
    "hardware stack error",
    "invalid program counter",
    "operation not supported on global/shared address space",
    "CUBLAS_STATUS_EXECUTION_FAILED",
    "CUDNN_STATUS_EXECUTION_FAILED",
};

// An allocation failed and nothing else did: recoverable once the failed batch's memory is
// freed. The caching allocator's "CUDA out of memory. Tried to allocate ...", the runtime's
// "CUDA error: out of memory", cuBLAS/cuDNN failing to get workspace, the CPU allocator's
// "DefaultCPUAllocator: not enough memory" / "can't allocate memory", and cuDNN's
// algorithm search, which ends with "Unable to find a valid cuDNN algorithm" when every
// candidate ran out of memory.
constexpr std::array<std::string_view, 6> kOutOfMemory = {
    "out of memory",         "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED",
    "can't allocate memory", "not enough memory",          "Unable to find a valid cuDNN algorithm",
};

// CUDA errors that the runtime or library reports before any work is queued (a bad launch
// configuration or argument for this input): they leave the context as it was, so the worker
// stays, and the client gets an internal error.
constexpr std::array<std::string_view, 6> kRecoverableCuda = {
    "invalid configuration argument", "too many resources requested for launch",
    "CUBLAS_STATUS_NOT_SUPPORTED",    "CUBLAS_STATUS_INVALID_VALUE",
    "CUDNN_STATUS_NOT_SUPPORTED",     "CUDNN_STATUS_BAD_PARAM",
};

// Any other failure of CUDA or its libraries.
constexpr std::array<std::string_view, 8> kAnyCuda = {
    "CUDA error",    "CUDA driver error", "cuDNN error", "CUDNN_STATUS",
    "CUBLAS_STATUS", "CUSOLVER_STATUS",   "cuFFT error", "CUFFT_",
};

}  // namespace

WorkerError classify_failure(ExceptionFamily family, std::string_view message) {
  WorkerError e;
  e.message = first_line(message);
  // Sticky first: a message that names both (a poisoned context failing an allocation) must
  // not keep the worker.
  if (contains_any(message, kStickyCuda)) {
    e.kind = WorkerErrorKind::cuda_error;
    e.healthy = false;
    return e;
  }
  if (family == ExceptionFamily::out_of_memory || contains_any(message, kOutOfMemory)) {
    e.kind = WorkerErrorKind::oom;
    return e;  // recoverable: the allocation failed, nothing else did
  }
  if (contains_any(message, kRecoverableCuda)) {
    e.kind = WorkerErrorKind::internal;
    return e;
  }
  if (contains_any(message, kAnyCuda)) {
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
