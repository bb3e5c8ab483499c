#pragma once
// How a worker reports a failed request (the IPC `error` frame's JSON), and how the supervisor
// reads it. The kind says what went wrong; `healthy` says whether the worker can serve on.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"

namespace respawn {

enum class WorkerErrorKind { bad_input, oom, cuda_error, internal };

std::string_view to_string(WorkerErrorKind kind);
WorkerErrorKind parse_worker_error_kind(std::string_view name);  // unknown -> internal

struct WorkerError {
  WorkerErrorKind kind = WorkerErrorKind::internal;
  std::string message;
  bool healthy = true;
};

nlohmann::json to_json(const WorkerError& e);
WorkerError worker_error_from_json(const nlohmann::json& j);

// What the client sees: bad input -> 400, OOM -> 503 (retry later), a CUDA error -> 502 (the
// worker is being replaced), internal -> 500.
Error to_client_error(const WorkerError& e);

}  // namespace respawn
