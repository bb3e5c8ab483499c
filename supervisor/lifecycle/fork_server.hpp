#pragma once
// The supervisor's side of the fork server (docs/architecture.md, "The fork server"): a
// respawn-worker started with --fork-server, which loads libtorch and the model into host memory
// once and then forks workers that only pick their device, warm up and report ready. The
// WorkerManager owns it, restarts it with backoff when it dies, and starts workers cold
// meanwhile; a WorkerProcess asks it for a worker through fork().
// Its control socket (SOCK_SEQPACKET) carries one JSON message per packet; the worker's IPC
// socket travels with the fork request (SCM_RIGHTS). The worker it forks is the supervisor's own
// child (CLONE_PARENT): reaped, signalled and outlived exactly like a spawned one.
// Must be owned by a shared_ptr; lives on the I/O thread (not thread-safe).
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lifecycle/worker.hpp"
#include "respawn/result.hpp"

namespace respawn {

class ForkServer : public std::enable_shared_from_this<ForkServer> {
 public:
  enum class State { starting, ready, exited };
  struct Events {
    std::function<void(ForkServer&)> ready;
    std::function<void(ForkServer&)> exited;  // reaped; error() says why it ended
  };

  ForkServer(boost::asio::io_context& io, Events events);
  ~ForkServer();  // kills and reaps it if it still runs
  ForkServer(const ForkServer&) = delete;
  ForkServer& operator=(const ForkServer&) = delete;

  // Starts the process (`launch.args` include --fork-server); it has `launch.load_timeout` to
  // say ready.
  Result<pid_t> start(const WorkerLaunch& launch);
  // Forks a worker that runs `argv` (a cold worker's command line, argv[0] first) with `ipc_fd`
  // as its IPC socket, and returns its pid. Blocks the I/O thread until the fork server answers:
  // a fork takes well under a millisecond per 100 MB the fork server holds. A fork server that
  // does not answer within `timeout` is killed. Only while ready.
  Result<pid_t> fork(const std::vector<std::string>& argv, int ipc_fd,
                     std::chrono::milliseconds timeout);
  // SIGKILL; exited follows once it is reaped.
  void kill(const std::string& why);

  State state() const { return state_; }
  pid_t pid() const { return pid_; }
  const std::string& error() const { return error_; }  // why it failed or ended
  // For /admin/workers and the metrics: pid, state, what it holds, its load time, resident
  // memory (shared copy-on-write with the cpu workers it forked) and forks made.
  nlohmann::json status() const;
  std::uint64_t rss_bytes() const;

 private:
  void read_ready();
  void on_message(const nlohmann::json& message);
  void on_reaped(int status);

  Events events_;
  boost::asio::posix::stream_descriptor control_;
  boost::asio::posix::stream_descriptor pidfd_;
  boost::asio::steady_timer load_timer_;
  State state_ = State::starting;
  pid_t pid_ = 0;
  std::string error_;
  nlohmann::json ready_;  // its ready message
  std::uint64_t forks_ = 0;
};

std::string_view to_string(ForkServer::State state);

}  // namespace respawn
