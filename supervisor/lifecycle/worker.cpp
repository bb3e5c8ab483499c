#include "lifecycle/worker.hpp"

namespace respawn {

std::string_view to_string(WorkerState state) {
  switch (state) {
    case WorkerState::spawning:
      return "spawning";
    case WorkerState::ready:
      return "ready";
    case WorkerState::busy:
      return "busy";
    case WorkerState::draining:
      return "draining";
    case WorkerState::exited:
      return "exited";
  }
  return "unknown";
}

nlohmann::json Worker::status() const {
  nlohmann::json j = {{"pid", pid()},
                      {"state", to_string(state())},
                      {"requests_served", served()},
                      {"requests_in_flight", inflight()},
                      {"age_s", age_s()},
                      {"forked", forked},
                      {"rss_bytes", rss_bytes()},
                      {"gpu_memory_bytes", gpu_bytes_}};
  if (request_limit > 0) j["request_limit"] = request_limit;
  const auto& ready = info();
  if (ready.is_object()) {
    // What this worker runs on and was built with, from its ready frame.
    for (const char* key : {"device", "libtorch_version", "cuda_build", "cuda_version",
                            "model_format", "device_fallback"}) {
      if (ready.contains(key)) j[key] = ready[key];
    }
  }
  return j;
}

}  // namespace respawn
