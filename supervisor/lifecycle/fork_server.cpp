#include "lifecycle/fork_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <csignal>
#include <cstring>

#include "lifecycle/worker_process.hpp"
#include "respawn/json_util.hpp"
#include "respawn/proc_stats.hpp"

namespace respawn {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxMessage = 64 * 1024;

// One packet from a non-blocking SOCK_SEQPACKET socket: its JSON (discarded if not JSON), or
// nothing when none is waiting (`eof` tells a closed socket).
std::optional<nlohmann::json> receive_message(int fd, bool& eof) {
  std::string buf(kMaxMessage, '\0');
  ssize_t n = 0;
  do {
    n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  eof = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  if (n <= 0) return std::nullopt;
  return nlohmann::json::parse(buf.begin(), buf.begin() + n, nullptr, false);
}

// The request and the worker's socket, in one packet.
bool send_fork_request(int fd, const std::string& text, int ipc_fd) {
  iovec iov{const_cast<char*>(text.data()), text.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &ipc_fd, sizeof(int));
  ssize_t n = 0;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(text.size());
}

}  // namespace

std::string_view to_string(ForkServer::State state) {
  switch (state) {
    case ForkServer::State::starting:
      return "starting";
    case ForkServer::State::ready:
      return "ready";
    case ForkServer::State::exited:
      return "exited";
  }
  return "unknown";
}

ForkServer::ForkServer(asio::io_context& io, Events events)
    : events_(std::move(events)), control_(io), pidfd_(io), load_timer_(io) {}

ForkServer::~ForkServer() {
  if (pidfd_.is_open()) {
    kill_through(pidfd_);
    ::waitpid(pid_, nullptr, 0);
    close_pidfd(pidfd_);
  }
}

Result<pid_t> ForkServer::start(const WorkerLaunch& launch) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    return make_error(ErrorKind::internal, std::string("socketpair: ") + std::strerror(errno));
  }
  auto child = spawn_child(launch.exe, launch.args, fds[1], launch.env);
  ::close(fds[1]);
  if (!child) {
    ::close(fds[0]);
    state_ = State::exited;
    error_ = child.error().message;
    return child.error();
  }
  pid_ = child->pid;
  pidfd_.assign(child->pidfd);
  control_.assign(fds[0]);
  control_.non_blocking(true);
  reap_when_exited(weak_from_this(), pidfd_, pid_, [this](int status) { on_reaped(status); });
  read_ready();
  load_timer_.expires_after(launch.load_timeout);
  load_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->state_ != State::starting) return;
    self->kill("not ready within load_timeout_ms");
  });
  spdlog::info("fork server {} started", pid_);
  return pid_;
}

void ForkServer::read_ready() {
  control_.async_wait(asio::posix::descriptor_base::wait_read,
                      [weak = weak_from_this()](const boost::system::error_code& ec) {
                        auto self = weak.lock();
                        if (ec || !self || self->state_ != State::starting) return;
                        bool eof = false;
                        auto message = receive_message(self->control_.native_handle(), eof);
                        if (message) return self->on_message(*message);
                        if (!eof) return self->read_ready();
                        // It closed the socket: it is exiting; the reap says how.
                      });
}

void ForkServer::on_message(const nlohmann::json& message) {
  const auto type = json_get<std::string>(message, "type", "");
  if (type == "ready") {
    load_timer_.cancel();
    ready_ = message;
    state_ = State::ready;
    spdlog::info("fork server {} ready: holds the {} ({:.0f} ms, rss {} MB)", pid_,
                 json_get<std::string>(message, "holds", "?"),
                 json_get<double>(message, "load_ms", 0), rss_bytes() >> 20);
    if (events_.ready) events_.ready(*this);
    return;
  }
  kill(type == "error" ? json_get<std::string>(message, "message", "failed to load")
                       : "sent an unexpected message: " + message.dump());
}

Result<pid_t> ForkServer::fork(const std::vector<std::string>& argv, int ipc_fd,
                               std::chrono::milliseconds timeout) {
  if (state_ != State::ready) {
    return make_error(ErrorKind::unavailable,
                      "the fork server is " + std::string(to_string(state_)));
  }
  const int fd = control_.native_handle();
  if (!send_fork_request(fd, nlohmann::json{{"args", argv}}.dump(), ipc_fd)) {
    const std::string why = std::string("cannot send it a fork request: ") + std::strerror(errno);
    kill(why);
    return make_error(ErrorKind::internal, why);
  }
  pollfd p{fd, POLLIN, 0};
  int ready = 0;
  do {
    ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  bool eof = false;
  const auto reply = ready > 0 ? receive_message(fd, eof) : std::nullopt;
  if (!reply) {
    const std::string why =
        ready == 0 ? "no answer to a fork request within " + std::to_string(timeout.count()) + " ms"
                   : "its socket closed during a fork request";
    kill(why);
    return make_error(ErrorKind::internal, why);
  }
  const auto pid = json_get<std::int64_t>(*reply, "pid", 0);
  if (pid <= 0) {
    return make_error(
        ErrorKind::internal,
        json_get<std::string>(*reply, "error", "a malformed answer: " + reply->dump()));
  }
  ++forks_;
  return static_cast<pid_t>(pid);
}

void ForkServer::kill(const std::string& why) {
  if (error_.empty()) error_ = why;
  if (state_ != State::exited && pidfd_.is_open()) {
    spdlog::warn("fork server {}: {}; killing it", pid_, why);
    kill_through(pidfd_);
  }
}

void ForkServer::on_reaped(int status) {
  load_timer_.cancel();
  close_pidfd(pidfd_);
  boost::system::error_code ignored;
  control_.close(ignored);
  if (error_.empty()) {
    error_ = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                 : "exited with code " + std::to_string(WEXITSTATUS(status));
  }
  const bool was_ready = state_ == State::ready;
  state_ = State::exited;
  spdlog::warn("fork server {} ended{}: {}", pid_, was_ready ? "" : " before it was ready", error_);
  if (events_.exited) events_.exited(*this);
}

std::uint64_t ForkServer::rss_bytes() const {
  return state_ == State::exited ? 0 : respawn::rss_bytes(pid_);
}

nlohmann::json ForkServer::status() const {
  nlohmann::json j = {
      {"pid", pid_}, {"state", to_string(state_)}, {"rss_bytes", rss_bytes()}, {"forks", forks_}};
  if (state_ != State::starting) {
    for (const char* key : {"holds", "load_ms"}) {
      if (ready_.contains(key)) j[key] = ready_[key];
    }
  }
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace respawn
