#include "client/server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <thread>

extern char** environ;

namespace respawn::client {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kDestructorStopLimit = std::chrono::seconds(15);
// A child that closed its stdout gets this long to finish exiting, so the error can say how.
constexpr auto kExitGrace = std::chrono::seconds(2);
constexpr auto kReapPoll = milliseconds(10);

std::string spell(milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

// The parent's environment with `env` laid over it, as "NAME=VALUE" strings for execve.
std::vector<std::string> child_environment(const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    const std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    if (env.find(std::string(name)) == env.end()) out.emplace_back(entry);
  }
  for (const auto& [name, value] : env) out.push_back(name + "=" + value);
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void write_all(int fd, const std::string& text) {
  [[maybe_unused]] const auto ignored = ::write(fd, text.data(), text.size());
}

}  // namespace

std::optional<Endpoint> parse_listening_line(std::string_view line) {
  constexpr std::string_view prefix = "listening on ";
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.substr(0, prefix.size()) != prefix) return std::nullopt;
  return parse_http_url(line.substr(prefix.size()));
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + (name ? " (" + std::string(name) + ")" : "");
  }
  return "wait status " + std::to_string(status);
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !reaped_) stop(SIGTERM, kDestructorStopLimit);
  close_stdout();
}

Result<Endpoint> ServerProcess::start(const ServerProcessOptions& options) {
  if (pid_ != -1) return make_error(ErrorKind::internal, "ServerProcess::start called twice");
  if (options.argv.empty()) return make_error(ErrorKind::internal, "no program to start");
  const std::string& exe = options.argv.front();
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return make_error(ErrorKind::internal, std::string("pipe: ") + std::strerror(errno));
  }
  int log = -1;
  if (!options.stderr_path.empty()) {
    log = ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log < 0) {
      const int error = errno;
      ::close(out[0]);
      ::close(out[1]);
      return make_error(ErrorKind::internal,
                        "cannot write " + options.stderr_path + ": " + std::strerror(error));
    }
  }
  if (::access(exe.c_str(), X_OK) != 0) {
    const int error = errno;
    ::close(out[0]);
    ::close(out[1]);
    if (log >= 0) ::close(log);
    return make_error(ErrorKind::internal, "cannot execute " + exe + ": " + std::strerror(error));
  }
  // Everything the child needs is built before fork: between fork and exec it only calls
  // async-signal-safe functions (the parent may have other threads).
  std::vector<std::string> argv_strings = options.argv;
  std::vector<std::string> env_strings = child_environment(options.env);
  const auto args = pointers(argv_strings);
  const auto envp = pointers(env_strings);
  const std::string exec_failed = "cannot execute " + exe + "\n";
  const std::string chdir_failed = "cannot change to the directory " + options.working_dir + "\n";
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    if (log >= 0) ::dup2(log, STDERR_FILENO);
    if (options.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);  // the parent died before prctl: nobody to serve
    }
    if (!options.working_dir.empty() && ::chdir(options.working_dir.c_str()) != 0) {
      write_all(STDERR_FILENO, chdir_failed);
      ::_exit(126);
    }
    ::execve(args[0], args.data(), envp.data());
    write_all(STDERR_FILENO, exec_failed);
    ::_exit(127);
  }
  const int fork_error = errno;
  ::close(out[1]);
  if (log >= 0) ::close(log);
  stdout_fd_ = out[0];
  if (pid_ < 0) {
    pid_ = -1;
    close_stdout();
    return make_error(ErrorKind::internal, std::string("fork: ") + std::strerror(fork_error));
  }
  return read_listening_line(options.listen_timeout);
}

Result<Endpoint> ServerProcess::read_listening_line(milliseconds limit) {
  std::string seen;
  bool closed = false;  // EOF: the child exited, or closed its stdout, without listening
  const auto deadline = Clock::now() + limit;
  while (!closed && seen.find('\n') == std::string::npos) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{stdout_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), INT_MAX)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return fail_start(std::string("poll: ") + std::strerror(errno));
    if (ready == 0) continue;
    char buf[256];
    const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    closed = n <= 0;
    if (!closed) seen.append(buf, static_cast<std::size_t>(n));
  }
  const auto newline = seen.find('\n');
  const std::string line = seen.substr(0, newline);
  if (newline != std::string::npos) {
    if (auto ep = parse_listening_line(line)) return *ep;
    return fail_start("the server printed '" + line +
                      "' instead of 'listening on http://HOST:PORT'");
  }
  const std::string printed = line.empty() ? "" : " (it printed '" + line + "')";
  if (closed) {
    const auto until = Clock::now() + kExitGrace;
    while (!try_reap() && Clock::now() < until) std::this_thread::sleep_for(kReapPoll);
    if (!reaped_) return fail_start("the server closed its stdout before listening" + printed);
    const std::string how = status_ ? " (" + describe_wait_status(*status_) + ")" : "";
    return fail_start("the server exited before listening" + how + printed);
  }
  return fail_start("the server did not say 'listening on http://HOST:PORT' within " +
                    spell(limit) + printed);
}

Error ServerProcess::fail_start(std::string why) {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    reap_blocking();
  }
  close_stdout();
  return make_error(ErrorKind::unavailable, std::move(why));
}

bool ServerProcess::try_reap() {
  if (pid_ <= 0 || reaped_) return true;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = status;
  } else if (!(r < 0 && errno == ECHILD)) {
    return false;  // still running (or EINTR)
  }
  reaped_ = true;  // ECHILD: someone else reaped it; its status is lost
  close_stdout();
  return true;
}

void ServerProcess::reap_blocking() {
  while (pid_ > 0 && !reaped_) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, 0);
    if (r == pid_) {
      status_ = status;
    } else if (r < 0 && errno == EINTR) {
      continue;
    }
    reaped_ = true;
  }
  close_stdout();
}

void ServerProcess::close_stdout() {
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
}

bool ServerProcess::exited() {
  return try_reap();
}

int ServerProcess::stop(int sig, milliseconds timeout) {
  if (pid_ <= 0 || reaped_) return -1;
  if (sig != 0) ::kill(pid_, sig);
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (try_reap()) return status_.value_or(-1);
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(kReapPoll);
  }
  ::kill(pid_, SIGKILL);
  reap_blocking();
  return -1;
}

}  // namespace respawn::client
