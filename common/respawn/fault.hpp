#pragma once
// Fault injection for tests and chaos runs: what a worker started with
// --enable-fault-injection does when a request carries "fault" or it is started with --fault.
// Per request: crash | hang | oom | oom_fatal | oom_if_batched | cuda_error |
//              illegal_memory_access | malformed | slow:MS.
// At start:    fail_load | crash_on_load | slow_load:MS.
// Parsing is pure and torch-free; thread-safe.
#include <optional>
#include <string_view>

namespace respawn {

struct Fault {
  enum class Kind {
    crash,      // abort() mid-request
    hang,       // stop answering and sending frames, forever
    oom,        // a real allocation failure (recoverable: the worker stays)
    oom_fatal,  // report an OOM and declare the worker unhealthy
    // a real allocation failure in any forward that batches this request with others, so the
    // batch is retried smaller (the request itself succeeds once it runs alone)
    oom_if_batched,
    cuda_error,  // report a sticky CUDA error (unhealthy)
    // launch a real kernel that writes to an address no allocation owns: the CUDA context is
    // poisoned for good (a real sticky error); refused as bad input on a cpu worker
    illegal_memory_access,
    malformed,  // write bytes that are not a frame
    slow,       // sleep `ms` before serving normally
    fail_load,  // start: report a load failure and exit
    crash_on_load,
    slow_load,  // start: sleep `ms` before loading
  };
  Kind kind;
  unsigned ms = 0;
};

// nullopt for an unknown spec.
std::optional<Fault> parse_fault(std::string_view spec);
bool is_start_fault(const Fault& fault);

}  // namespace respawn
