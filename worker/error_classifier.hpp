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
  other,          // anything else
};

WorkerError classify_failure(ExceptionFamily family, std::string_view message);

}  // namespace respawn::worker
