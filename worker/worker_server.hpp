#pragma once
// The worker's side of the IPC: announces readiness, then reads request frames from the
// inherited socket and answers each one, one at a time. Exits its loop when the socket closes
// (the supervisor is gone) or on a shutdown frame. Not thread-safe; the runner must outlive it.
#include <deque>

#include "model_runner.hpp"
#include "respawn/frame.hpp"

namespace respawn::worker {

class WorkerServer {
 public:
  // With fault_injection, a request's "fault" field is obeyed (see fault.hpp).
  WorkerServer(int fd, ModelRunner& runner, bool fault_injection)
      : fd_(fd), runner_(runner), fault_injection_(fault_injection) {}
  // Returns the process exit code: 0 on a clean end, non-zero when the stream broke.
  int run();

 private:
  bool send(const ipc::Frame& frame);
  bool handle(const ipc::Frame& frame);  // false when the worker must stop
  void handle_infer(const ipc::Frame& frame, const nlohmann::json& request);
  void handle_generate(const ipc::Frame& frame, const nlohmann::json& request);
  // Acts out the request's injected fault; true when the request is answered already.
  bool inject_fault(std::uint64_t id, const nlohmann::json& request);
  void send_result(std::uint64_t id, nlohmann::json reply, std::string binary = {});
  // Between decode steps: reads what the supervisor sent meanwhile without blocking; true if it
  // cancelled request `id`. Other frames wait in pending_ for the main loop.
  bool cancel_requested(std::uint64_t id);
  bool read_available(bool block);  // false when the socket closed or broke
  void send_error(std::uint64_t id, const WorkerError& error);

  int fd_;
  ModelRunner& runner_;
  ipc::FrameDecoder decoder_;
  std::deque<ipc::Frame> pending_;
  bool closed_ = false;
  bool fault_injection_;
  bool healthy_ = true;
};

// Tells the supervisor why loading failed (an error frame with request id 0) before exiting.
void report_load_failure(int fd, const std::string& reason);

}  // namespace respawn::worker
