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

std::string_view first_line(std::string_view message) {
  return message.substr(0, message.find('\n'));
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// "RuntimeError: ...", "builtins.ValueError: ...": a (dotted) Python exception name at the
// start of the line, then ": ". Returns the name, or empty.
std::string_view exception_name(std::string_view line) {
  const auto colon = line.find(": ");
  if (colon == std::string_view::npos || colon == 0) return {};
  const auto name = line.substr(0, colon);
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.';
    if (!ok) return {};
  }
  if (!ends_with(name, "Error") && !ends_with(name, "Exception")) return {};
  return name;
}

constexpr std::string_view kTorchScriptFailed =
    "The following operation failed in the TorchScript interpreter.";
constexpr std::string_view kHere = "<--- HERE";

// What a failure says, split into the line a client should see and the text the rules read.
struct Failure {
  std::string_view line;  // the useful line
  std::string_view body;  // that line and what follows it; the whole message if not TorchScript
  std::string_view type;  // the Python exception name of a TorchScript error ("RuntimeError")
};

// libtorch's messages start with what failed and go on with a C++ backtrace that clients need
// not see: their first line is the useful one. An error inside a TorchScript forward starts
// with kTorchScriptFailed and a traceback of TorchScript source (serialized and original code
// for a loaded model, each frame ending in a "~~~ <--- HERE" marker, with source lines after
// it), then the line that says what failed, at the start of a line: "RuntimeError: index out
// of range in self" (any C++ error), "builtins.ValueError: ..." (raised in the model), perhaps
// followed by the C++ message and backtrace again (TORCH_SHOW_CPP_STACKTRACES=1). A nested
// failure repeats the header inside the message, so the last marker is the one that counts.
Failure parse_failure(std::string_view message) {
  Failure f{first_line(message), message, {}};
  const auto header = message.find(kTorchScriptFailed);
  if (header == std::string_view::npos) return f;
  const auto here = message.rfind(kHere);
  auto pos = here != std::string_view::npos && here > header ? here : header;
  while ((pos = message.find('\n', pos)) != std::string_view::npos) {
    ++pos;
    const auto line = first_line(message.substr(pos));
    if (const auto name = exception_name(line); !name.empty()) {
      f.body = message.substr(pos);
      f.type = name;
      // TorchScript names every C++ failure RuntimeError, which says nothing, and puts Python
      // exceptions raised in the model in `builtins`; without them the line reads as the same
      // failure does outside TorchScript.
      std::string_view shown = line;
      if (starts_with(shown, "builtins.")) {
        shown.remove_prefix(std::string_view("builtins.").size());
      }
      if (starts_with(shown, "RuntimeError: ")) {
        shown.remove_prefix(std::string_view("RuntimeError: ").size());
      }
      f.line = shown;
      return f;
    }
  }
  return f;
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

// Python's exceptions for a caller's mistake, when the model raises them itself.
constexpr std::array<std::string_view, 3> kInputExceptions = {"IndexError", "ValueError",
                                                              "TypeError"};

// What libtorch's operators say when the tensors they were given do not fit: an index out of
// range (embedding: "index out of range in self", gather/index_select: "index 5 is out of
// bounds for dimension 1 with size 2", select: "index 5 out of range for tensor of size",
// "Dimension out of range"), shapes that do not fit together ("mat1 and mat2 shapes cannot be
// multiplied", "The size of tensor a (3) must match the size of tensor b (4)", cat's "Sizes of
// tensors must match", view's "shape '[-1, 3]' is invalid for input of size 4", index_put's
// "shape mismatch"), dtypes ("expected scalar type Long but found Float", "Expected tensor for
// argument #1 'indices' to have one of the following scalar types", "mat1 and mat2 must have
// the same dtype"), and forward's own argument checks on a model without an input spec. The
// request's tensors are the only thing that changes between calls of a model that loaded and
// passed its warm-up forward, so these are the request's fault.
constexpr std::array<std::string_view, 15> kInputPhrases = {
    "out of range",
    "out of bounds",
    "too many indices for tensor",
    "shapes cannot be multiplied",
    "must match the size of tensor",
    "Sizes of tensors must match",
    "is invalid for input of size",
    "shape mismatch",
    "cannot be broadcast",
    "elements cannot be converted to Scalar",
    "scalar type",
    "dtype",
    "can't be cast to the desired output type",
    "is missing value for argument",
    "size mismatch",
};

// "Expected <what the operator takes> but got <what it was given>" and its variants (conv's
// "expected input[1, 2, 5, 5] to have 3 channels, but got 2 channels instead", bmm's "Expected
// size for first two dimensions of batch2 tensor to be: [2, 3] but got: [2, 4].", LSTM's
// "Expected 4, got 5", forward()'s "expected at most 3 argument(s) but received 4").
constexpr std::array<std::string_view, 4> kGotPhrases = {"but got", ", got ", "but found",
                                                         "but received"};

// These look like the above but are the model's or libtorch's fault, never the request's: a
// tensor on the wrong device ("Expected all tensors to be on the same device, but found at
// least two devices", "Expected tensor for argument #1 'indices' to have the same device as
// tensor for argument #2 'weight'") and libtorch's internal consistency checks.
constexpr std::array<std::string_view, 4> kNotInput = {"same device", "device type",
                                                       "INTERNAL ASSERT FAILED", "Could not run"};

bool is_input_error(ExceptionFamily family, const Failure& f) {
  if (family == ExceptionFamily::input) return true;  // c10::IndexError, ValueError, TypeError
  if (contains_any(f.line, kNotInput)) return false;
  auto type = f.type;
  if (starts_with(type, "builtins.")) type.remove_prefix(std::string_view("builtins.").size());
  for (const auto name : kInputExceptions) {
    if (type == name) return true;
  }
  if (contains_any(f.line, kInputPhrases)) return true;
  return contains(f.line, "xpected") && contains_any(f.line, kGotPhrases);
}

}  // namespace

WorkerError classify_failure(ExceptionFamily family, std::string_view message,
                             std::optional<int> cuda_error_code) {
  WorkerError e;
  // The rules read the failure itself, not the TorchScript source quoted above it (its comments
  // and code could name anything); the input rules read only its useful line, not the backtrace.
  const Failure failure = parse_failure(message);
  e.message = std::string(failure.line);
  message = failure.body;
  if (cuda_error_code) {
    switch (*cuda_error_code) {
      case cuda_code::memory_allocation:
        e.kind = WorkerErrorKind::oom;
        return e;
      case cuda_code::invalid_value:
      case cuda_code::invalid_configuration:
      case cuda_code::launch_out_of_resources:
        e.kind = WorkerErrorKind::internal;
        return e;
      default:
        e.kind = WorkerErrorKind::cuda_error;
        e.healthy = false;
        return e;
    }
  }
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
  e.kind = is_input_error(family, failure) ? WorkerErrorKind::bad_input : WorkerErrorKind::internal;
  return e;
}

}  // namespace respawn::worker
