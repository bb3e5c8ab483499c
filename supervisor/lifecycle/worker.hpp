#pragma once
// One worker process and the supervisor's view of it: spawned with posix_spawn over an
// inherited socketpair, watched through a Boost.Process v2 handle, fed requests (several may
// be in flight; the worker batches them). It enforces its own deadlines: not ready within the
// load timeout, or silent (no frame at all) for the hang timeout while busy, and it is
// SIGKILLed. It knows why it exited; what to do about it is the WorkerManager's business.
// State: spawning -> ready <-> busy (requests in flight) -> draining -> exited (any state ->
// exited on a failure).
// Must be owned by a shared_ptr; lives on the I/O thread (not thread-safe).
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>
#include "lifecycle/ipc_channel.hpp"
#include "lifecycle/job.hpp"

namespace respawn {

enum class WorkerState { spawning, ready, busy, draining, exited };
std::string_view to_string(WorkerState state);

// A child's environment: every "NAME=value" of `base` (a null-terminated array, as `environ`)
// whose NAME is not in `overrides`, then the overrides. Pure; thread-safe.
std::vector<std::string> child_environment(char* const* base,
                                           const std::map<std::string, std::string>& overrides);

class Worker : public std::enable_shared_from_this<Worker> {
 public:
  // Its callbacks capture `this`: never copied or moved (which the deleted copy also forbids).
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  using Clock = std::chrono::steady_clock;
  struct Events {
    std::function<void(Worker&)> ready;
    std::function<void(Worker&, ipc::Frame)> answer;  // result or error of a request in flight
    // a streamed chunk of request `id`
    std::function<void(Worker&, std::uint64_t id, std::string_view text)> text;
    std::function<void(Worker&)> exited;  // reaped; exit_reason() says why
  };

  Worker(boost::asio::io_context& io, Events events);
  ~Worker();

  // Starts the process with the supervisor's environment plus `env` (which wins over a variable
  // of the same name); on success the load timeout runs until the ready frame.
  Result<pid_t> spawn(const std::string& exe, const std::vector<std::string>& args,
                      std::chrono::milliseconds load_timeout,
                      const std::map<std::string, std::string>& env = {});
  // Sends the job as request `request_id`; the hang timer runs while any request is in flight,
  // restarted by every frame the worker sends.
  void send(const Job& job, std::uint64_t request_id, std::chrono::milliseconds hang_timeout);
  // Asks the worker to stop a request in flight (a generation ends at its next step).
  void cancel(std::uint64_t request_id);
  // Sends the batching and memory settings (a configure frame).
  void configure(const nlohmann::json& settings);
  std::size_t inflight() const { return inflight_.size(); }
  // Planned stop: asks the worker to exit (shutdown frame) and SIGKILLs it after `timeout`.
  void drain(const std::string& reason, std::chrono::milliseconds timeout);
  // Unplanned stop: SIGKILL now. The first reason given sticks.
  void kill(const std::string& reason);

  WorkerState state() const { return state_; }
  bool reached_ready() const { return reached_ready_; }
  pid_t pid() const { return pid_; }
  const std::string& exit_reason() const { return exit_reason_; }
  // After the exit: why it counts against what the worker was running, if it does. It died of
  // a crash signal (SIGSEGV, SIGABRT, ...), the kernel's OOM killer ended it, or it exited with
  // a failure code by itself. Nothing when we ended it (hang, timeout, operator...) or
  // something outside sent SIGKILL or SIGTERM: that is no evidence against any request.
  std::optional<std::string> fault_evidence() const;
  const nlohmann::json& info() const { return info_; }  // the ready frame
  std::uint64_t served() const { return served_; }
  double age_s() const;  // since ready, or since it took over as a spare (0 before)
  void start_serving() { ready_at_ = Clock::now(); }  // a spare's age starts when it serves
  Clock::time_point spawned_at() const { return spawned_at_; }
  std::uint64_t rss_bytes() const;                        // now, from /proc
  std::uint64_t gpu_bytes() const { return gpu_bytes_; }  // as of the last answer read
  void set_gpu_bytes(std::uint64_t bytes) { gpu_bytes_ = bytes; }
  std::uint64_t request_limit = 0;  // max_requests + this worker's jitter; 0 = none
  nlohmann::json status() const;

 private:
  void on_frame(ipc::Frame frame);
  void on_ready(const ipc::Frame& frame);
  void on_answer(ipc::Frame frame);
  void on_channel_closed(const std::string& reason, bool protocol);
  // Waits (asynchronously) for the pidfd to say the process exited, then reaps it.
  void watch_exit();
  void on_reaped(int native_status);
  void send_sigkill();  // only while pidfd_ is open
  void close_pidfd();
  void arm(boost::asio::steady_timer& timer, std::chrono::milliseconds after, const char* reason);

  boost::asio::io_context& io_;
  Events events_;
  boost::asio::steady_timer load_timer_;
  boost::asio::steady_timer hang_timer_;
  boost::asio::steady_timer drain_timer_;
  // A pidfd: readable once the process has exited; signals through it cannot reach a reused
  // pid. Closed once the process is reaped.
  boost::asio::posix::stream_descriptor pidfd_;
  std::shared_ptr<IpcChannel> channel_;
  WorkerState state_ = WorkerState::spawning;
  bool reached_ready_ = false;
  pid_t pid_ = 0;
  std::string exit_reason_;
  int exit_status_ = 0;  // as waitpid reports it
  std::uint64_t oom_kills_at_spawn_ = 0;
  nlohmann::json info_;
  std::uint64_t served_ = 0;
  std::unordered_set<std::uint64_t> inflight_;
  std::chrono::milliseconds hang_timeout_{0};
  std::uint64_t gpu_bytes_ = 0;
  Clock::time_point spawned_at_{};
  Clock::time_point ready_at_{};
};

}  // namespace respawn
