#include "respawn/worker_error.hpp"

namespace respawn {

std::string_view to_string(WorkerErrorKind kind) {
  switch (kind) {
    case WorkerErrorKind::bad_input:
      return "bad_input";
    case WorkerErrorKind::oom:
      return "oom";
    case WorkerErrorKind::cuda_error:
      return "cuda_error";
    case WorkerErrorKind::internal:
      return "internal";
  }
  return "internal";
}

WorkerErrorKind parse_worker_error_kind(std::string_view name) {
  for (auto k : {WorkerErrorKind::bad_input, WorkerErrorKind::oom, WorkerErrorKind::cuda_error}) {
    if (to_string(k) == name) return k;
  }
  return WorkerErrorKind::internal;
}

nlohmann::json to_json(const WorkerError& e) {
  return {{"kind", to_string(e.kind)}, {"message", e.message}, {"healthy", e.healthy}};
}

WorkerError worker_error_from_json(const nlohmann::json& j) {
  WorkerError e;
  if (!j.is_object()) return e;
  if (j.contains("kind") && j["kind"].is_string()) {
    e.kind = parse_worker_error_kind(j["kind"].get<std::string>());
  }
  if (j.contains("message") && j["message"].is_string()) e.message = j["message"];
  if (j.contains("healthy") && j["healthy"].is_boolean()) e.healthy = j["healthy"];
  return e;
}

Error to_client_error(const WorkerError& e) {
  switch (e.kind) {
    case WorkerErrorKind::bad_input:
      return make_error(ErrorKind::bad_input, e.message);
    case WorkerErrorKind::oom:
      return make_error(ErrorKind::unavailable, "out of memory: " + e.message);
    case WorkerErrorKind::cuda_error:
      // PyTorch's own messages often start with the same words already.
      return make_error(ErrorKind::worker_failed, e.message.rfind("CUDA error: ", 0) == 0
                                                      ? e.message
                                                      : "CUDA error: " + e.message);
    case WorkerErrorKind::internal:
      break;
  }
  return make_error(ErrorKind::internal, "model error: " + e.message);
}

}  // namespace respawn
