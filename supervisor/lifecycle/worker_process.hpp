#pragma once
// One worker process: spawned with posix_spawn over an inherited socketpair, watched through a
// pidfd, fed requests over its IpcChannel. It enforces its own deadlines: not ready within the
// load timeout, or silent (no frame at all) for the hang timeout while busy, and it is
// SIGKILLed. It knows why it exited; what to do about it is the WorkerManager's business.
// Must be owned by a shared_ptr; lives on the I/O thread (not thread-safe).
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "lifecycle/ipc_channel.hpp"
#include "lifecycle/worker.hpp"
#include "respawn/result.hpp"

namespace respawn {

// A child's environment: every "NAME=value" of `base` (a null-terminated array, as `environ`)
// whose NAME is not in `overrides`, then the overrides. Pure; thread-safe.
std::vector<std::string> child_environment(char* const* base,
                                           const std::map<std::string, std::string>& overrides);

// A child process and a pidfd on it (readable once it exits; signals through it cannot reach a
// reused pid).
struct ChildProcess {
  pid_t pid = 0;
  int pidfd = -1;
};
// Starts `exe` with the supervisor's environment plus `env` (which wins over a variable of the
// same name), `child_fd` as its fd 3 and every other descriptor closed.
Result<ChildProcess> spawn_child(const std::string& exe, const std::vector<std::string>& args,
                                 int child_fd, const std::map<std::string, std::string>& env);

// Waits (asynchronously) for the pidfd of child `pid` to say it exited, reaps it and calls
// `reaped` with its wait status, while `owner` (which holds `pidfd`) lives. The reap never
// blocks: a wake-up while the process still runs (epoll can report readiness of a descriptor
// number that was closed and reused, e.g. while a forked child held it) just waits again. A
// blocking waitpid here would stall the whole server.
void reap_when_exited(std::weak_ptr<const void> owner, boost::asio::posix::stream_descriptor& pidfd,
                      pid_t pid, std::function<void(int status)> reaped);
// Takes the pidfd out of epoll explicitly (close() alone would not while another process shares
// it), then closes it.
void close_pidfd(boost::asio::posix::stream_descriptor& pidfd);
// SIGKILL through the pidfd, so it can never reach another process that reused the pid.
void kill_through(boost::asio::posix::stream_descriptor& pidfd);
// This process's children whose name (/proc/PID/comm) is the first 15 bytes of `name`.
std::vector<pid_t> children_named(std::string_view name);

// The factory the server uses: a WorkerProcess, spawned.
WorkerFactory worker_process_factory(boost::asio::io_context& io);

class WorkerProcess final : public Worker {
 public:
  WorkerProcess(boost::asio::io_context& io, Events events);
  ~WorkerProcess() override;

  // Starts the process: forked by `launch.fork_server` when it is ready, else (or when that
  // fails) spawned with the supervisor's environment plus `launch.env` (which wins over a
  // variable of the same name). On success the load timeout runs until the ready frame.
  Result<pid_t> spawn(const WorkerLaunch& launch);

  void send(const Job& job, std::uint64_t request_id,
            std::chrono::milliseconds hang_timeout) override;
  void cancel(std::uint64_t request_id) override;
  void configure(const nlohmann::json& settings) override;
  void drain(RecycleReason reason, std::chrono::milliseconds timeout) override;
  void kill(RecycleReason reason) override;

  WorkerState state() const override { return state_; }
  bool reached_ready() const override { return reached_ready_; }
  pid_t pid() const override { return pid_; }
  std::size_t inflight() const override { return inflight_.size(); }
  RecycleReason exit_reason() const override;
  std::optional<std::string> fault_evidence() const override;
  const nlohmann::json& info() const override { return info_; }
  std::uint64_t served() const override { return served_; }
  double age_s() const override;
  void start_serving() override { ready_at_ = Clock::now(); }
  Clock::time_point spawned_at() const override { return spawned_at_; }
  std::uint64_t rss_bytes() const override;

 private:
  void on_frame(ipc::Frame frame);
  void on_ready(const ipc::Frame& frame);
  void on_answer(ipc::Frame frame);
  void deliver_token(const ipc::Frame& frame);
  void on_channel_closed(const std::string& reason, bool protocol);
  void on_reaped(int native_status);
  void arm(boost::asio::steady_timer& timer, std::chrono::milliseconds after, RecycleReason reason);
  std::weak_ptr<WorkerProcess> weak_self();

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
  std::optional<RecycleReason> exit_reason_;  // the first reason given sticks
  int exit_status_ = 0;                       // as waitpid reports it
  std::uint64_t oom_kills_at_spawn_ = 0;
  nlohmann::json info_;
  std::uint64_t served_ = 0;
  std::unordered_set<std::uint64_t> inflight_;
  std::chrono::milliseconds hang_timeout_{0};
  Clock::time_point spawned_at_{};
  Clock::time_point ready_at_{};
};

}  // namespace respawn
