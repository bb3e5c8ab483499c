#pragma once
// Turns a failure at the libtorch boundary into a WorkerError: what kind it is and whether the
// worker can go on serving. Torch-free (it works on the exception's family and message) so the
// rules are unit-testable on any build.
#include <string_view>

#include "respawn/worker_error.hpp"

namespace respawn::worker {

enum class ExceptionFamily {
  out_of_memory,  // c10::OutOfMemoryError or std::bad_alloc
  input,          // c10::IndexError, ValueError, TypeError: the model rejected its input
  torch_other,    // any other c10::Error
  other,          // anything else (a failure inside a TorchScript forward is a runtime_error)
};

// The kind, in this order: a sticky CUDA error (the worker must go), out of memory, other CUDA
// errors, then bad_input for the input family or a failure that says the request's tensors do
// not fit the model (an index out of range, shapes or dtypes that do not match, also when a
// TorchScript forward reports it), else internal. The message is the failure's useful line:
// its first, or for a TorchScript error the line after the traceback that says what failed.
WorkerError classify_failure(ExceptionFamily family, std::string_view message);

}  // namespace respawn::worker
