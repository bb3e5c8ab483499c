#include "respawn/fork_server.hpp"

#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

namespace respawn {

namespace {

constexpr int kIpcFd = 3;  // where a worker finds its IPC socket (--ipc-fd 3)

// A fork whose child has the caller's parent as its parent. glibc's fork() cannot ask for
// CLONE_PARENT, so this is the raw system call: no pthread_atfork handler runs, which is sound
// only because this process has a single thread and no lock can be held. (glibc keeps no pid
// cache; its raise() asks the kernel for the thread id.) Both clone argument orders (x86_64,
// aarch64) agree when every pointer is null.
pid_t fork_as_sibling() {
  return static_cast<pid_t>(
      ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
}

struct Request {
  nlohmann::json body;
  int fd = -1;  // the worker's IPC socket, if one came with it
};

// One packet; nothing at EOF (the supervisor closed its end or is gone).
std::optional<Request> receive(int fd) {
  std::string buf(64 * 1024, '\0');
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = 0;
  do {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return std::nullopt;
  Request request;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      std::memcpy(&request.fd, CMSG_DATA(c), sizeof(int));
    }
  }
  request.body = nlohmann::json::parse(buf.begin(), buf.begin() + n, nullptr, false);
  return request;
}

std::optional<std::vector<std::string>> worker_args(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("args") || !body["args"].is_array()) return std::nullopt;
  std::vector<std::string> args;
  for (const auto& a : body["args"]) {
    if (!a.is_string()) return std::nullopt;
    args.push_back(a.get<std::string>());
  }
  return args;
}

}  // namespace

int threads_in_process() {
  std::error_code ec;
  int n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++n;
  }
  return ec ? 0 : n;
}

bool send_control(int fd, const nlohmann::json& message) {
  const auto text = message.dump();
  ssize_t n = 0;
  do {
    n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(text.size());
}

std::optional<std::vector<std::string>> serve_forks(int fd,
                                                    const std::function<void(pid_t)>& forked) {
  while (auto request = receive(fd)) {
    auto args = worker_args(request->body);
    if (!args || request->fd < 0) {
      if (request->fd >= 0) ::close(request->fd);
      send_control(fd, {{"error", "a fork request needs 'args' (strings) and a socket"}});
      continue;
    }
    const pid_t pid = fork_as_sibling();
    if (pid == 0) {
      // The worker: its IPC socket replaces the control socket on fd 3 (dup2 clears
      // close-on-exec; nothing here execs, but the worker's own children must not inherit it).
      if (request->fd != kIpcFd) {
        if (::dup2(request->fd, kIpcFd) < 0) ::_exit(127);
        ::close(request->fd);
      }
      if (fd != kIpcFd) ::close(fd);
      return args;
    }
    const int error = errno;
    ::close(request->fd);
    if (pid < 0) {
      spdlog::error("clone(CLONE_PARENT): {}", std::strerror(error));
      send_control(fd, {{"error", std::string("clone: ") + std::strerror(error)}});
    } else {
      if (forked) forked(pid);
      send_control(fd, {{"pid", pid}});
    }
  }
  return std::nullopt;
}

}  // namespace respawn
