#pragma once
// A worker as the WorkerManager sees it: it is sent requests (several may be in flight; the
// worker batches them), reports ready, answers, generated tokens and its exit through Events, and
// can be drained or killed. WorkerProcess (worker_process.hpp) is the real one, a child process
// over a socketpair; unit tests drive the manager with an in-process stand-in
// (tests/unit/test_worker_manager.cpp). A WorkerFactory makes them, so the manager never names
// the process class.
// State: spawning -> ready <-> busy (requests in flight) -> draining -> exited (any state ->
// exited on a failure).
// Owned by a shared_ptr; lives on the I/O thread (not thread-safe).
#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lifecycle/job.hpp"
#include "lifecycle/recycle_reason.hpp"
#include "respawn/frame.hpp"

namespace respawn {

enum class WorkerState { spawning, ready, busy, draining, exited };
inline constexpr std::array kAllWorkerStates = {WorkerState::spawning, WorkerState::ready,
                                                WorkerState::busy, WorkerState::draining,
                                                WorkerState::exited};
std::string_view to_string(WorkerState state);

class Worker : public std::enable_shared_from_this<Worker> {
 public:
  using Clock = std::chrono::steady_clock;
  struct Events {
    std::function<void(Worker&)> ready;
    std::function<void(Worker&, ipc::Frame)> answer;  // result or error of a request in flight
    // request `id` produced a token, and the text that became final with it (often empty: a
    // character split across tokens, or a stop string that may still match), and its logprobs
    // when the request asked (else null)
    std::function<void(Worker&, std::uint64_t id, std::string_view text,
                       const nlohmann::json& logprobs)>
        token;
    std::function<void(Worker&)> exited;  // reaped; exit_reason() says why
  };

  Worker() = default;
  // Its callbacks capture `this`: never copied or moved (which the deleted copy also forbids).
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  virtual ~Worker() = default;

  // Sends the job as request `request_id`; the hang timer runs while any request is in flight,
  // restarted by every frame the worker sends.
  virtual void send(const Job& job, std::uint64_t request_id,
                    std::chrono::milliseconds hang_timeout) = 0;
  // Asks the worker to stop a request in flight (a generation ends at its next step).
  virtual void cancel(std::uint64_t request_id) = 0;
  // Sends the batching and memory settings (a configure frame).
  virtual void configure(const nlohmann::json& settings) = 0;
  // Planned stop: asks the worker to exit and kills it after `timeout`. The first reason given
  // (by drain or kill) sticks.
  virtual void drain(RecycleReason reason, std::chrono::milliseconds timeout) = 0;
  // Unplanned stop: SIGKILL now; from here on it takes no work.
  virtual void kill(RecycleReason reason) = 0;

  virtual WorkerState state() const = 0;
  virtual bool reached_ready() const = 0;
  virtual pid_t pid() const = 0;
  virtual std::size_t inflight() const = 0;
  // Why it ended; meaningful once exited.
  virtual RecycleReason exit_reason() const = 0;
  // After the exit: why it counts against what the worker was running, if it does. It died of
  // a crash signal (SIGSEGV, SIGABRT, ...), the kernel's OOM killer ended it, or it exited with
  // a failure code by itself. Nothing when we ended it (hang, timeout, operator...) or
  // something outside sent SIGKILL or SIGTERM: that is no evidence against any request.
  virtual std::optional<std::string> fault_evidence() const = 0;
  virtual const nlohmann::json& info() const = 0;  // the ready frame
  virtual std::uint64_t served() const = 0;
  virtual double age_s() const = 0;  // since ready, or since it took over as a spare
  virtual void start_serving() = 0;  // a spare's age starts when it serves
  virtual Clock::time_point spawned_at() const = 0;
  virtual std::uint64_t rss_bytes() const = 0;  // now (a /proc read for a process)

  std::uint64_t gpu_bytes() const { return gpu_bytes_; }  // as of the last answer read
  void set_gpu_bytes(std::uint64_t bytes) { gpu_bytes_ = bytes; }
  std::uint64_t request_limit = 0;  // max_requests + this worker's jitter; 0 = none
  bool forked = false;              // started by the fork server, not spawned cold
  // For /admin/workers: pid, state, requests, age, memory, and what it runs on.
  nlohmann::json status() const;

 private:
  std::uint64_t gpu_bytes_ = 0;
};

class ForkServer;

// How to start a worker: the executable, its arguments, the load timeout and the environment
// added to the supervisor's; and the fork server to ask first, if one is ready.
struct WorkerLaunch {
  std::string exe;
  std::vector<std::string> args;
  std::chrono::milliseconds load_timeout{0};
  std::map<std::string, std::string> env;
  std::shared_ptr<ForkServer> fork_server;
};

// Starts a worker that reports to `events`; nullptr (with the reason logged) when it could not
// be started.
using WorkerFactory =
    std::function<std::shared_ptr<Worker>(const WorkerLaunch& launch, Worker::Events events)>;

}  // namespace respawn
