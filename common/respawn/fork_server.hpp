#pragma once
// The fork server's side (docs/architecture.md, "The fork server"), shared by respawn-worker and
// the fake worker of the tests: a respawn-worker started with
// --fork-server loads libtorch, the tokenizer and the model into host memory once, then forks
// workers on the supervisor's request. It never initializes CUDA, never runs a forward and starts
// no thread, so that a forked child is as clean as a fresh process: the child picks its device,
// creates its own CUDA context and thread pools, and reports ready like a cold worker.
//
// The control socket (SOCK_SEQPACKET, fd 3) carries one JSON message per packet. The fork server
// sends {"type":"ready", ...} or {"type":"error","message"} once; then each request
// {"args":[...]} (a cold worker's command line) with the worker's IPC socket attached
// (SCM_RIGHTS) is answered {"pid":N} or {"error":"..."}. The child is cloned with CLONE_PARENT:
// it is the supervisor's child, not the fork server's, so the supervisor reaps it, signals it
// through a pidfd, and it dies with the supervisor (PR_SET_PDEATHSIG) and outlives a fork server
// that dies.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace respawn {

// The number of threads this process runs (/proc/self/task); 0 when unreadable.
int threads_in_process();

// Sends one JSON message on the control socket; false when it could not be sent.
bool send_control(int fd, const nlohmann::json& message);

// Serves fork requests on `fd` until the supervisor closes its end; then returns nothing. In a
// forked child it returns the worker's command line, with its IPC socket on fd 3 (the control
// socket is closed there). `forked`, if given, runs in the fork server after each fork, before
// the answer (a test's fault hook).
std::optional<std::vector<std::string>> serve_forks(
    int fd, const std::function<void(pid_t)>& forked = nullptr);

}  // namespace respawn
