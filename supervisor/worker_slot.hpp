#pragma once
// The one worker process: spawns it (posix_spawn, watched through a Boost.Process v2 handle)
// over an inherited socketpair, runs one job at a time on it, notices when it dies, reaps it,
// and starts a fresh one, with exponential backoff while workers fail to start.
// State: spawning -> ready <-> busy -> exited -> spawning (after the restart timer).
// Must be owned by a shared_ptr; lives on the I/O thread (not thread-safe). The io_context
// and Metrics must outlive it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include "process_v2.hpp"

#include <nlohmann/json.hpp>

#include "ipc_channel.hpp"
#include "job.hpp"
#include "metrics.hpp"
#include "serve_options.hpp"

namespace respawn {

enum class WorkerState { stopped, spawning, ready, busy, exited };
std::string_view to_string(WorkerState state);

class WorkerSlot : public std::enable_shared_from_this<WorkerSlot> {
 public:
  WorkerSlot(boost::asio::io_context& io, const ServeOptions& options, Metrics& metrics);
  ~WorkerSlot();

  // Called whenever the worker can take a job (it became ready or finished one).
  void on_idle(std::function<void()> callback) { on_idle_ = std::move(callback); }

  void start();
  // Runs `job` on the worker; only while idle(). Its `done` gets the result or the error.
  void run(Job job);
  // Stops for good: kills the worker, fails the job in flight, reaps, then calls `done`.
  void stop(std::function<void()> done);

  bool idle() const { return state_ == WorkerState::ready; }
  bool ready() const { return state_ == WorkerState::ready || state_ == WorkerState::busy; }
  WorkerState state() const { return state_; }
  nlohmann::json status() const;
  // The last ready frame's model description; null until a worker was ready once.
  const nlohmann::json& model_info() const { return model_info_; }

 private:
  void spawn();
  void on_frame(ipc::Frame frame);
  void on_ready(const ipc::Frame& frame);
  void on_answer(ipc::Frame frame);
  void on_channel_closed(const std::string& reason, bool protocol);
  void kill_worker(const std::string& reason);
  void on_reaped(int native_status);
  void schedule_restart();

  boost::asio::io_context& io_;
  const ServeOptions& options_;
  Metrics& metrics_;
  boost::asio::steady_timer restart_timer_;
  std::optional<boost::process::v2::process> process_;
  std::shared_ptr<IpcChannel> channel_;
  WorkerState state_ = WorkerState::stopped;
  std::optional<Job> inflight_;
  std::uint64_t inflight_id_ = 0;
  std::uint64_t next_request_id_ = 1;
  std::chrono::steady_clock::time_point spawned_at_{};
  std::chrono::steady_clock::time_point ready_at_{};
  std::chrono::steady_clock::time_point job_started_{};
  nlohmann::json model_info_;
  std::string exit_reason_;  // why the current worker is going away
  std::string last_exit_reason_;
  int pid_ = 0;
  std::uint64_t starts_ = 0;
  std::uint64_t served_ = 0;    // by the current worker
  int failed_starts_ = 0;       // consecutive workers that exited before reaching ready
  bool reached_ready_ = false;  // the current worker sent its ready frame
  bool stopping_ = false;
  std::function<void()> on_idle_;
  std::function<void()> on_stopped_;
};

}  // namespace respawn
