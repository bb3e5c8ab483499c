// respawn-fake-worker: speaks the real IPC protocol with no model, so supervisor tests run in
// milliseconds and can make the worker misbehave on purpose. Accepts the real worker's flags.
//
// RESPAWN_FAKE_MODE (environment): "echo" (default) or "fail-load" (reports a load failure and
// exits). RESPAWN_FAKE_LOAD_MS delays the ready frame. A generate request's prompt steers it:
//   "sleep:N"  answer after N ms          "crash"  exit(1) without answering
//   "garbage"  write bytes that are not a frame    anything else: echo the prompt back
//   "stream-then-crash"  stream one chunk, then exit(1)
// Infer requests echo their input tensors as outputs. The injected faults of the real worker
// (a request's "fault", --fault at start; see common/respawn/fault.hpp) work the same way.
// With --fork-server it is a fork server (common/respawn/fork_server.hpp) holding nothing: it
// says ready at once and forks fake workers; RESPAWN_FAKE_FORK_SERVER=fail-load makes it report
// a load failure instead, =die-after-fork makes it exit after a fork without answering.
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/fault.hpp"
#include "respawn/fork_server.hpp"
#include "respawn/frame.hpp"
#include "respawn/proc_stats.hpp"

namespace {

using respawn::ipc::Frame;
using respawn::ipc::MessageType;
using respawn::ipc::write_all;

void send(int fd, const Frame& frame) {
  write_all(fd, respawn::ipc::encode_frame(frame));
}

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

void send_error(int fd, std::uint64_t id, const char* kind, const char* message, bool healthy) {
  const nlohmann::json error = {{"kind", kind}, {"message", message}, {"healthy", healthy}};
  send(fd, {MessageType::error, id, error.dump(), {}});
}

// Acts out an injected fault; true when the request is answered (or never will be).
bool inject(int fd, const Frame& frame, const nlohmann::json& request) {
  if (!request.is_object() || !request.contains("fault") || !request["fault"].is_string()) {
    return false;
  }
  const auto fault = respawn::parse_fault(request["fault"].get<std::string>());
  if (!fault) return false;
  using Kind = respawn::Fault::Kind;
  switch (fault->kind) {
    case Kind::crash:
      std::abort();
    case Kind::hang:
      while (true) std::this_thread::sleep_for(std::chrono::hours(1));
    case Kind::oom:
      send_error(fd, frame.request_id, "oom", "fake: out of memory", true);
      break;
    case Kind::oom_fatal:
      send_error(fd, frame.request_id, "oom", "fake: fatal OOM", false);
      break;
    case Kind::cuda_error:
      send_error(fd, frame.request_id, "cuda_error", "fake: illegal memory access", false);
      break;
    case Kind::malformed:
      write_all(fd, std::string(64, '\x5a'));
      break;
    case Kind::slow:
      std::this_thread::sleep_for(std::chrono::milliseconds(fault->ms));
      return false;
    default:
      return false;
  }
  return true;
}

void answer_generate(int fd, const Frame& frame) {
  const auto request = nlohmann::json::parse(frame.json, nullptr, false);
  if (inject(fd, frame, request)) return;
  const std::string prompt = request.is_object() ? request.value("prompt", "") : "";
  if (prompt.rfind("sleep:", 0) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(prompt.c_str() + 6)));
  } else if (prompt == "crash") {
    std::_Exit(1);
  } else if (prompt == "garbage") {
    write_all(fd, std::string(64, '\x5a'));
    return;
  } else if (prompt == "stream-then-crash") {
    send(fd, {MessageType::token, frame.request_id, R"({"text":"partial"})", {}});
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::_Exit(1);
  }
  // Stream the echo as one chunk, as the real worker streams final text.
  send(fd, {MessageType::token, frame.request_id, nlohmann::json{{"text", prompt}}.dump(), {}});
  const nlohmann::json reply = {{"text_output", prompt},
                                {"finish_reason", "length"},
                                {"prompt_tokens", prompt.size()},
                                {"completion_tokens", prompt.size()},
                                {"seed", 0},
                                {"pid", ::getpid()}};
  send(fd, {MessageType::result, frame.request_id, reply.dump(), {}});
}

void answer_infer(int fd, const Frame& frame) {
  auto request = nlohmann::json::parse(frame.json, nullptr, false);
  if (inject(fd, frame, request)) return;
  const nlohmann::json reply = {{"outputs", request.value("inputs", nlohmann::json::array())},
                                {"pid", ::getpid()}};
  send(fd, {MessageType::result, frame.request_id, reply.dump(), frame.binary});
}

}  // namespace

int run(const std::vector<std::string>& args) {
  int fd = -1;
  std::string start_fault;
  bool fork_server = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--fork-server") fork_server = true;
    if (i + 1 == args.size()) continue;
    if (args[i] == "--ipc-fd") fd = std::atoi(args[i + 1].c_str());
    if (args[i] == "--fault") start_fault = args[i + 1];
  }
  if (fd < 0) return 64;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::signal(SIGPIPE, SIG_IGN);
  if (fork_server) {
    if (env_or("RESPAWN_FAKE_FORK_SERVER", "") == "fail-load") {
      respawn::send_control(fd, {{"type", "error"}, {"message", "fake fork server load failure"}});
      return 2;
    }
    respawn::send_control(fd, {{"type", "ready"},
                               {"pid", ::getpid()},
                               {"holds", "nothing"},
                               {"load_ms", 0},
                               {"rss_bytes", respawn::rss_bytes(0)}});
    // die-after-fork: the fork server ends between a fork and its answer (the worker it
    // forked is the supervisor's child, whose pid the supervisor never learns).
    const bool die_after_fork = env_or("RESPAWN_FAKE_FORK_SERVER", "") == "die-after-fork";
    auto child = respawn::serve_forks(fd, [die_after_fork](pid_t) {
      if (die_after_fork) ::_exit(3);
    });
    return child ? run(*child) : 0;
  }
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::atoi(env_or("RESPAWN_FAKE_LOAD_MS", "0").c_str())));
  if (start_fault.rfind("slow_load:", 0) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(start_fault.c_str() + 10)));
  }
  if (start_fault == "crash_on_load") std::abort();
  if (env_or("RESPAWN_FAKE_MODE", "echo") == "fail-load" || start_fault == "fail_load") {
    const nlohmann::json error = {
        {"kind", "internal"}, {"message", "fake load failure"}, {"healthy", false}};
    send(fd, {MessageType::error, 0, error.dump(), {}});
    return 2;
  }
  const nlohmann::json ready = {{"task", "generate"},
                                {"device", "fake"},
                                {"pid", ::getpid()},
                                {"inputs", nlohmann::json::array()},
                                {"outputs", nlohmann::json::array()}};
  send(fd, {MessageType::ready, 0, ready.dump(), {}});

  respawn::ipc::FrameDecoder decoder;
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return 0;
    decoder.feed(std::string_view(buffer, static_cast<std::size_t>(n)));
    while (auto frame = decoder.next()) {
      if (frame->type == MessageType::generate) answer_generate(fd, *frame);
      if (frame->type == MessageType::infer) answer_infer(fd, *frame);
      if (frame->type == MessageType::shutdown) return 0;
    }
    if (decoder.error()) return 1;
  }
}

int main(int argc, char** argv) {
  return run(std::vector<std::string>(argv, argv + argc));
}
