#pragma once
// A `respawn serve` child process, as the programs that start one for themselves use it
// (`respawn smoke`, the integration tests): fork and exec it with its stdout on a pipe and its
// stderr in a log file, wait (within a limit) for the "listening on http://HOST:PORT" line it
// prints once its port is bound, stop it with a signal and a deadline (then SIGKILL), and
// always reap it: every failure of start() and the destructor reap what was started. Only
// signals its own child, by pid, and never after reaping it. Not thread-safe: one thread owns a
// ServerProcess (the parent-death signal follows the thread that called start()).
#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/http_client.hpp"
#include "respawn/result.hpp"

namespace respawn::client {

struct ServerProcessOptions {
  std::vector<std::string> argv;  // argv[0] is the executable's path (no PATH search)
  // Set in the child on top of the parent's environment (replacing a variable of that name).
  std::map<std::string, std::string> env;
  std::string stderr_path;  // the child's stderr goes here (created or truncated); "": ours
  std::string working_dir;  // the child's working directory; "": ours
  // PR_SET_PDEATHSIG: the child gets SIGTERM when the thread that started it ends (a killed
  // `respawn smoke` must not leave its server, and the server's worker, behind).
  bool die_with_parent = false;
  std::chrono::milliseconds listen_timeout = std::chrono::seconds(30);
};

// The endpoint in a "listening on http://HOST:PORT" line (a trailing newline is ignored);
// nullopt when the line says anything else.
std::optional<Endpoint> parse_listening_line(std::string_view line);

// A description of a raw wait status: "exit status 3", "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

class ServerProcess {
 public:
  ServerProcess() = default;
  // Stops a child that still runs: SIGTERM, SIGKILL after 15 s; reaps it either way.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the child and waits up to options.listen_timeout for its listening line. On failure
  // the error (kind unavailable, or internal when no child could be started) says why: it could
  // not be executed, it exited first (and how), it printed something else, or nothing in time;
  // the child is then already killed (SIGKILL) and reaped. Call at most once.
  Result<Endpoint> start(const ServerProcessOptions& options);

  // The child's pid, also after it is reaped; -1 before a child was started.
  pid_t pid() const { return pid_; }
  // True once the child has exited; reaps it then (never blocks). True without a child.
  bool exited();
  // The raw wait status once the child is reaped; nullopt before (or if someone else reaped it).
  std::optional<int> wait_status() const { return status_; }

  // Sends `sig` (0: none, only wait) and waits up to `timeout` for the exit; past it, SIGKILL
  // and wait for that. Returns the raw wait status when the child exited within `timeout`; -1
  // when it had to be killed, had already been reaped (wait_status() keeps its status) or was
  // never started. Always leaves the child reaped.
  int stop(int sig, std::chrono::milliseconds timeout);

 private:
  Result<Endpoint> read_listening_line(std::chrono::milliseconds limit);
  // Kills the child that failed to start, reaps it, and returns the error `why`.
  Error fail_start(std::string why);
  bool try_reap();  // waitpid(WNOHANG); true once reaped
  void reap_blocking();
  void close_stdout();

  pid_t pid_ = -1;
  bool reaped_ = false;
  std::optional<int> status_;
  int stdout_fd_ = -1;  // kept open until the reap: a later write to stdout gets no SIGPIPE
};

}  // namespace respawn::client
