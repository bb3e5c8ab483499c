#include "lifecycle/worker_process.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "lifecycle/fork_server.hpp"
#include "respawn/json_util.hpp"
#include "respawn/proc_stats.hpp"
#include "respawn/worker_error.hpp"

namespace respawn {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kChildFd = 3;
// A fork server answers in milliseconds; one that does not within this is broken.
constexpr std::chrono::milliseconds kForkTimeout{5000};

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

// posix_spawn rather than Boost 1.81's launcher, which corrupts its argv buffer (and drops
// the error_code in its io_context overload). The socket's child end becomes fd 3 (dup2 also
// clears close-on-exec) and every other descriptor above it is closed in the child, so no
// client socket or listener leaks into the worker.
// The child gets its environment as posix_spawn's envp: the supervisor's own stays untouched.
Result<pid_t> posix_spawn_with_fd(const std::string& exe, const std::vector<std::string>& args,
                                  int child_fd, const std::map<std::string, std::string>& env) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  auto entries = child_environment(environ, env);
  std::vector<char*> envp;
  for (auto& e : entries) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_fd, kChildFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, kChildFd + 1);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return make_error(ErrorKind::internal, std::strerror(rc));
  return pid;
}

// A pidfd for a child that already runs; without one it is killed and reaped.
Result<ChildProcess> watch_child(pid_t pid) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const std::string why = std::strerror(errno);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return make_error(ErrorKind::internal, "pidfd_open (Linux >= 5.3): " + why);
  }
  return ChildProcess{pid, pidfd};
}

}  // namespace

Result<ChildProcess> spawn_child(const std::string& exe, const std::vector<std::string>& args,
                                 int child_fd, const std::map<std::string, std::string>& env) {
  // dup2 onto itself would not clear close-on-exec: a socket already on fd 3 is copied first.
  const int moved = child_fd == kChildFd ? ::fcntl(child_fd, F_DUPFD_CLOEXEC, kChildFd + 1) : -1;
  auto pid = posix_spawn_with_fd(exe, args, moved >= 0 ? moved : child_fd, env);
  if (moved >= 0) ::close(moved);
  if (!pid) return pid.error();
  return watch_child(*pid);
}

void reap_when_exited(std::weak_ptr<const void> owner, asio::posix::stream_descriptor& pidfd,
                      pid_t pid, std::function<void(int)> reaped) {
  pidfd.async_wait(asio::posix::descriptor_base::wait_read,
                   [owner, &pidfd, pid,
                    reaped = std::move(reaped)](const boost::system::error_code& ec) mutable {
                     const auto alive = owner.lock();
                     if (ec || !alive) return;
                     int status = 0;
                     const pid_t got = ::waitpid(pid, &status, WNOHANG);
                     if (got == 0) return reap_when_exited(owner, pidfd, pid, std::move(reaped));
                     reaped(got == pid ? status : 0);
                   });
}

void close_pidfd(asio::posix::stream_descriptor& pidfd) {
  boost::system::error_code ignored;
  pidfd.cancel(ignored);
  ::close(pidfd.release());
}

void kill_through(asio::posix::stream_descriptor& pidfd) {
  ::syscall(SYS_pidfd_send_signal, pidfd.native_handle(), SIGKILL, nullptr, 0);
}

std::vector<pid_t> children_named(std::string_view name) {
  name = name.substr(0, 15);  // TASK_COMM_LEN - 1
  const pid_t self = ::getpid();
  std::vector<pid_t> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
       it.increment(ec)) {
    const auto entry = it->path().filename().string();
    if (entry.find_first_not_of("0123456789") != std::string::npos) continue;
    // "PID (COMM) STATE PPID ...": COMM may hold anything, so its end is the last ')'.
    std::ifstream in(it->path() / "stat");
    const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto open = stat.find('(');
    const auto close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid != self || std::string_view(stat).substr(open + 1, close - open - 1) != name) continue;
    out.push_back(static_cast<pid_t>(std::stol(entry)));
  }
  return out;
}

WorkerFactory worker_process_factory(asio::io_context& io) {
  return [&io](const WorkerLaunch& launch, Worker::Events events) -> std::shared_ptr<Worker> {
    auto worker = std::make_shared<WorkerProcess>(io, std::move(events));
    auto pid = worker->spawn(launch);
    if (!pid) {
      spdlog::error("cannot start worker {}: {}", launch.exe, pid.error().message);
      return nullptr;
    }
    return worker;
  };
}

std::vector<std::string> child_environment(char* const* base,
                                           const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> out;
  for (; base && *base; ++base) {
    const std::string_view entry(*base);
    const auto name = entry.substr(0, entry.find('='));
    if (overrides.count(std::string(name)) == 0) out.emplace_back(entry);
  }
  for (const auto& [name, value] : overrides) out.push_back(name + "=" + value);
  return out;
}

WorkerProcess::WorkerProcess(asio::io_context& io, Events events)
    : io_(io),
      events_(std::move(events)),
      load_timer_(io),
      hang_timer_(io),
      drain_timer_(io),
      pidfd_(io) {}

WorkerProcess::~WorkerProcess() {
  // Normally the worker was reaped before; this is the last defence against an orphan.
  if (pidfd_.is_open()) {
    kill_through(pidfd_);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    close_pidfd(pidfd_);
  }
}

Result<pid_t> WorkerProcess::spawn(const WorkerLaunch& launch) {
  int fds[2];
  const auto open_socketpair = [&fds]() -> std::optional<Error> {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) return std::nullopt;
    return make_error(ErrorKind::internal, std::string("socketpair: ") + std::strerror(errno));
  };
  if (auto error = open_socketpair()) return *error;
  std::optional<Result<ChildProcess>> child;
  if (launch.fork_server && launch.fork_server->state() == ForkServer::State::ready) {
    std::vector<std::string> argv = {launch.exe};
    argv.insert(argv.end(), launch.args.begin(), launch.args.end());
    auto pid = launch.fork_server->fork(argv, fds[1], kForkTimeout);
    if (pid) {
      child = watch_child(*pid);
      forked = true;
    } else {
      spdlog::warn("starting a worker cold: the fork server could not fork one: {}",
                   pid.error().message);
      // It may have forked one before it failed: that one must not share the cold worker's
      // socket. It sees EOF and exits.
      ::close(fds[0]);
      ::close(fds[1]);
      if (auto error = open_socketpair()) return *error;
    }
  }
  if (!child) child = spawn_child(launch.exe, launch.args, fds[1], launch.env);
  ::close(fds[1]);
  if (!*child) {
    ::close(fds[0]);
    exit_reason_ = RecycleReason::load_failure;
    state_ = WorkerState::exited;
    return child->error();
  }
  pidfd_.assign((*child)->pidfd);
  pid_ = (*child)->pid;
  spawned_at_ = Clock::now();
  oom_kills_at_spawn_ = system_oom_kills();
  channel_ = std::make_shared<IpcChannel>(
      asio::local::stream_protocol::socket(io_, asio::local::stream_protocol(), fds[0]),
      ipc::kDefaultMaxFrameBytes);
  auto weak = weak_self();
  channel_->start(
      [weak](ipc::Frame frame) {
        if (auto self = weak.lock()) self->on_frame(std::move(frame));
      },
      [weak](const std::string& reason, bool protocol) {
        if (auto self = weak.lock()) self->on_channel_closed(reason, protocol);
      });
  reap_when_exited(weak_self(), pidfd_, pid_, [this](int status) { on_reaped(status); });
  arm(load_timer_, launch.load_timeout, RecycleReason::load_failure);
  spdlog::info("worker {} {}", pid_, forked ? "forked" : "spawned");
  return pid_;
}

std::weak_ptr<WorkerProcess> WorkerProcess::weak_self() {
  return std::static_pointer_cast<WorkerProcess>(shared_from_this());
}

void WorkerProcess::arm(asio::steady_timer& timer, std::chrono::milliseconds after,
                        RecycleReason reason) {
  timer.expires_after(after);
  timer.async_wait([weak = weak_self(), reason](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->state_ == WorkerState::exited) return;
    spdlog::warn("worker {}: {} timeout", self->pid_, to_string(reason));
    self->kill(reason);
  });
}

void WorkerProcess::on_frame(ipc::Frame frame) {
  // A worker asked to stop may still finish loading or say goodbye; none of it matters now,
  // except the answers and tokens of the requests it still runs (a recycle handed over to a
  // spare while they ran).
  if (state_ == WorkerState::draining) {
    if (inflight_.count(frame.request_id) == 0) return;
    if (frame.type == ipc::MessageType::result || frame.type == ipc::MessageType::error) {
      return on_answer(std::move(frame));
    }
    if (frame.type == ipc::MessageType::token) deliver_token(frame);
    return;
  }
  switch (frame.type) {
    case ipc::MessageType::ready:
      if (state_ == WorkerState::spawning) return on_ready(frame);
      break;
    case ipc::MessageType::result:
    case ipc::MessageType::error:
      if (inflight_.count(frame.request_id) > 0) return on_answer(std::move(frame));
      if (frame.type == ipc::MessageType::error && frame.request_id == 0 && !reached_ready_) {
        const auto error = worker_error_from_json(parse_json(frame.json));
        spdlog::error("worker {} failed to load: {}", pid_, error.message);
        exit_reason_ = RecycleReason::load_failure;
        return;
      }
      break;
    case ipc::MessageType::heartbeat:
    case ipc::MessageType::token:
      // Proof of life: a busy worker that still talks is not hung.
      if (state_ != WorkerState::busy) return;
      arm(hang_timer_, hang_timeout_, RecycleReason::hang);
      if (frame.type == ipc::MessageType::token && inflight_.count(frame.request_id) > 0) {
        deliver_token(frame);
      }
      return;
    default:
      break;
  }
  spdlog::error("worker {} sent an unexpected {} frame (request {})", pid_,
                ipc::to_string(frame.type), frame.request_id);
  kill(RecycleReason::protocol);
}

void WorkerProcess::deliver_token(const ipc::Frame& frame) {
  const auto token = parse_json(frame.json);
  const auto& text = json_field(token, "text");
  const auto& logprobs = json_field(token, "logprobs");
  events_.token(
      *this, frame.request_id,
      text.is_string() ? std::string_view(text.get_ref<const std::string&>()) : std::string_view(),
      logprobs.is_array() ? logprobs : nlohmann::json());
}

void WorkerProcess::on_ready(const ipc::Frame& frame) {
  auto info = parse_json(frame.json);
  if (!info.is_object()) {
    spdlog::error("worker {} sent a ready frame that is not a JSON object", pid_);
    return kill(RecycleReason::protocol);
  }
  load_timer_.cancel();
  info_ = std::move(info);
  reached_ready_ = true;
  ready_at_ = Clock::now();
  state_ = WorkerState::ready;
  spdlog::info("worker {} ready in {:.0f} ms on {} (task {})", pid_,
               std::chrono::duration<double, std::milli>(ready_at_ - spawned_at_).count(),
               json_get<std::string>(info_, "device", "?"),
               json_get<std::string>(info_, "task", "?"));
  events_.ready(*this);
}

void WorkerProcess::send(const Job& job, std::uint64_t request_id,
                         std::chrono::milliseconds hang_timeout) {
  hang_timeout_ = hang_timeout;
  // The hang timer measures silence while work is outstanding; a new request does not restart
  // it (a worker that stopped talking stays suspect however much is sent to it).
  if (inflight_.empty()) arm(hang_timer_, hang_timeout_, RecycleReason::hang);
  inflight_.insert(request_id);
  state_ = WorkerState::busy;
  const auto bytes = job.tensor_bytes();
  channel_->send_parts(ipc::encode_frame_head(job.type, request_id, job.json, bytes.size()),
                       job.binary, bytes);
}

void WorkerProcess::on_answer(ipc::Frame frame) {
  inflight_.erase(frame.request_id);
  ++served_;
  if (state_ == WorkerState::draining) {
    // Finishing what it ran when it was retired; the drain timer bounds that.
  } else if (inflight_.empty()) {
    hang_timer_.cancel();
    state_ = WorkerState::ready;
  } else {
    arm(hang_timer_, hang_timeout_, RecycleReason::hang);
  }
  events_.answer(*this, std::move(frame));
}

void WorkerProcess::cancel(std::uint64_t request_id) {
  if (inflight_.count(request_id) > 0) {
    channel_->send({ipc::MessageType::cancel, request_id, {}, {}});
  }
}

void WorkerProcess::configure(const nlohmann::json& settings) {
  if (channel_ && state_ != WorkerState::exited) {
    channel_->send({ipc::MessageType::configure, 0, settings.dump(), {}});
  }
}

void WorkerProcess::drain(RecycleReason reason, std::chrono::milliseconds timeout) {
  if (state_ == WorkerState::exited) return;
  if (!exit_reason_) exit_reason_ = reason;
  state_ = WorkerState::draining;
  load_timer_.cancel();
  hang_timer_.cancel();
  channel_->send({ipc::MessageType::shutdown, 0, {}, {}});
  drain_timer_.expires_after(timeout);
  drain_timer_.async_wait([weak = weak_self()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->state_ == WorkerState::exited) return;
    spdlog::warn("worker {} did not exit within the drain timeout; killing it", self->pid_);
    self->kill(self->exit_reason());
  });
}

void WorkerProcess::kill(RecycleReason reason) {
  if (!exit_reason_) exit_reason_ = reason;
  // From now on it takes no work, even before it is reaped.
  if (state_ != WorkerState::exited) state_ = WorkerState::draining;
  hang_timer_.cancel();
  load_timer_.cancel();
  if (channel_) channel_->close();
  if (pidfd_.is_open()) kill_through(pidfd_);  // on_reaped follows
}

void WorkerProcess::on_channel_closed(const std::string& reason, bool protocol) {
  if (state_ == WorkerState::draining) return;  // it is exiting as asked
  spdlog::warn("worker {} channel closed: {}", pid_, reason);
  kill(protocol ? RecycleReason::protocol
                : (reached_ready_ ? RecycleReason::crash : RecycleReason::load_failure));
}

void WorkerProcess::on_reaped(int native_status) {
  if (channel_) channel_->close();
  load_timer_.cancel();
  hang_timer_.cancel();
  drain_timer_.cancel();
  if (!exit_reason_) exit_reason_ = exit_reason();
  exit_status_ = native_status;
  spdlog::warn("worker {} {} (reason: {}, served {})", pid_, describe_status(native_status),
               to_string(exit_reason()), served_);
  state_ = WorkerState::exited;
  close_pidfd(pidfd_);
  events_.exited(*this);
}

std::optional<std::string> WorkerProcess::fault_evidence() const {
  if (exit_reason() != RecycleReason::crash)
    return std::nullopt;  // we ended it, for a reason of ours
  if (WIFSIGNALED(exit_status_)) {
    const int sig = WTERMSIG(exit_status_);
    for (const int crash : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS}) {
      if (sig == crash)
        return "died of signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
    }
    if (sig == SIGKILL && system_oom_kills() > oom_kills_at_spawn_) {
      return std::string("killed by the kernel's OOM killer");
    }
    return std::nullopt;
  }
  if (WIFEXITED(exit_status_) && WEXITSTATUS(exit_status_) != 0) {
    return "exited with code " + std::to_string(WEXITSTATUS(exit_status_));
  }
  return std::nullopt;
}

RecycleReason WorkerProcess::exit_reason() const {
  return exit_reason_.value_or(reached_ready_ ? RecycleReason::crash : RecycleReason::load_failure);
}

double WorkerProcess::age_s() const {
  if (!reached_ready_) return 0;
  return std::chrono::duration<double>(Clock::now() - ready_at_).count();
}

std::uint64_t WorkerProcess::rss_bytes() const {
  return state_ == WorkerState::exited ? 0 : respawn::rss_bytes(pid_);
}

}  // namespace respawn
