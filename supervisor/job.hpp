#pragma once
// A request on its way to the worker: the IPC frame to send and the callback that receives
// the worker's answer (or the error that replaced it). Exactly one call of `done` per job.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "respawn/frame.hpp"
#include "respawn/result.hpp"

namespace respawn {

using JobOutcome = Result<ipc::Frame>;

struct Job {
  ipc::MessageType type = ipc::MessageType::infer;
  std::string json;
  std::string binary;
  std::function<void(JobOutcome)> done;
  std::chrono::steady_clock::time_point enqueued{};
};

}  // namespace respawn
