#pragma once
// Turns a failure at the libtorch boundary into a WorkerError: what kind it is and whether the
// worker can go on serving. Torch-free (it works on the exception's family and message) so the
// rules are unit-testable on any build.
#include <optional>
#include <string_view>

#include "respawn/worker_error.hpp"

namespace respawn::worker {

enum class ExceptionFamily {
  out_of_memory,  // c10::OutOfMemoryError or std::bad_alloc
  input,          // c10::IndexError, ValueError, TypeError: the model rejected its input
  torch_other,    // any other c10::Error
  other,          // anything else (a failure inside a TorchScript forward is a runtime_error)
};

// The CUDA runtime's cudaError_t codes the rules single out (cuda's driver_types.h; checked
// against the real enum where the worker is built with CUDA, worker/model_runner.cpp).
namespace cuda_code {
constexpr int memory_allocation = 2;          // cudaErrorMemoryAllocation
constexpr int invalid_value = 1;              // cudaErrorInvalidValue
constexpr int invalid_configuration = 9;      // cudaErrorInvalidConfiguration
constexpr int launch_out_of_resources = 701;  // cudaErrorLaunchOutOfResources
constexpr int illegal_address = 700;          // cudaErrorIllegalAddress
constexpr int launch_failure = 719;           // cudaErrorLaunchFailure
constexpr int device_assert = 710;            // cudaErrorAssert
}  // namespace cuda_code

// The kind, in this order: a sticky CUDA error (the worker must go), out of memory, other CUDA
// errors, then bad_input for the input family or a failure that says the request's tensors do
// not fit the model (an index out of range, shapes or dtypes that do not match, also when a
// TorchScript forward reports it), else internal. The message is the failure's useful line:
// its first, or for a TorchScript error the line after the traceback that says what failed.
//
// `cuda_error_code` is the cudaError_t a c10::AcceleratorError carries (libtorch 2.8 on throws
// one for every failed CUDA runtime call). It decides on its own, whatever the text says:
// cudaErrorMemoryAllocation is an out-of-memory (recoverable); a launch that was refused before
// it ran (invalid value, invalid configuration, out of resources) is internal and leaves the
// worker healthy; any other code is a CUDA error that may have poisoned the context (sticky:
// illegal address, assert, launch failure, ECC...), so the worker is replaced.
WorkerError classify_failure(ExceptionFamily family, std::string_view message,
                             std::optional<int> cuda_error_code = std::nullopt);

}  // namespace respawn::worker
