#pragma once
// Helpers for integration tests: start the real `respawn` binary on port 0 in a per-test temp
// dir, talk HTTP to it, and always reap what was started. The process and the HTTP client are
// respawn_client's (supervisor/client/), which `respawn smoke` uses too. Used from the test
// thread (and from std::async for concurrent requests: http_request is thread-safe, Server is
// not).
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/server_process.hpp"

namespace respawn::test {

// Each folder can be moved with an environment variable (scripts/gpu-check runs binaries built
// on another machine): $RESPAWN_TEST_BIN_DIR, $RESPAWN_TEST_MODELS_DIR, $RESPAWN_TEST_DATA_DIR.
std::string bin_path(const std::string& name);    // in the build's bin/
std::string model_path(const std::string& name);  // in the source tree's models/
std::string data_path(const std::string& name);   // in the source tree's tests/data/
// The --device every Server gets unless its args name one: $RESPAWN_TEST_DEVICE, or cpu.
std::string test_device();
// `serve` arguments that run the fake worker (no libtorch), plus `extra`.
std::vector<std::string> fake_args(std::vector<std::string> extra = {});

struct HttpResult {
  int status = 0;  // 0: no response (connection failed or closed)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string error;                           // with status 0: why ("connect: ...", ...)
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// One request on its own connection; status 0 when no complete response came within `timeout`
// (connect, send and read together).
HttpResult http_request(int port, const std::string& method, const std::string& target,
                        const std::string& body = "",
                        const std::map<std::string, std::string>& headers = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));
// Sends raw bytes and reads one response (10 s at most); status 0 when none came.
HttpResult raw_request(int port, const std::string& bytes);

// The `data:` payloads of a Server-Sent Events body, in order.
std::vector<std::string> sse_data(const std::string& body);

// A fresh directory under the system's temp dir ("<prefix><random>"), removed with all in it
// when this goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};
// A whole file's bytes; empty when it cannot be read.
std::string read_file(const std::filesystem::path& path);

// True once pid no longer runs (gone, or a zombie nobody reaped yet).
bool process_gone(pid_t pid);
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);
// The value of the Prometheus sample whose name{labels} is exactly `series`; -1 if absent.
double metric_value(const std::string& metrics_text, const std::string& series);

class Server;

// Each body POSTed on its own connection, all at once (the answers in the bodies' order), while
// the worker sleeps in another request (`blocker`, with the fault slow:MS), so they all wait
// together and share forwards however slowly they arrive; `headers`, if given, holds each body's
// own. The server must run with --enable-fault-injection.
std::vector<HttpResult> post_all_while_the_worker_sleeps(
    const Server& server, const std::string& target, const std::string& blocker,
    const std::vector<std::string>& bodies,
    const std::vector<std::map<std::string, std::string>>& headers = {});
// The X-Respawn-Batch-Size of an answer; 0 without one.
int batch_size(const HttpResult& result);

class Server {
 public:
  // Starts `respawn serve --port 0 <args>` with extra environment; waits for "listening on".
  explicit Server(const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return process_.pid(); }
  HttpResult get(const std::string& target) const { return http_request(port_, "GET", target); }
  HttpResult post(const std::string& target, const std::string& body,
                  const std::map<std::string, std::string>& headers = {}) const {
    return http_request(port_, "POST", target, body, headers);
  }
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  nlohmann::json workers() const;  // GET /admin/workers
  pid_t worker_pid() const;
  double metric(const std::string& series) const;
  // Sends sig (0: none) and waits for the exit; returns the raw wait status, or -1 on timeout
  // (then SIGKILLed) or when it was already stopped. Always reaps.
  int stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  std::string log() const;  // the server's (and its workers') stderr so far

 private:
  TempDir dir_{"respawn-test-"};
  client::ServerProcess process_;
  int port_ = 0;
};

}  // namespace respawn::test
