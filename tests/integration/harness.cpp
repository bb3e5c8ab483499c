#include "harness.hpp"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "client/http_client.hpp"

namespace respawn::test {

namespace {
// A folder compiled in at build time, unless the environment names another (binaries built here
// and run elsewhere, e.g. by scripts/gpu-check).
std::string dir_from(const char* variable, const char* built_in) {
  const char* dir = std::getenv(variable);
  return dir && *dir ? dir : built_in;
}
}  // namespace

std::string bin_path(const std::string& name) {
  return dir_from("RESPAWN_TEST_BIN_DIR", RESPAWN_BIN_DIR) + "/" + name;
}
std::string model_path(const std::string& name) {
  return dir_from("RESPAWN_TEST_MODELS_DIR", RESPAWN_MODELS_DIR) + "/" + name;
}
std::string data_path(const std::string& name) {
  return dir_from("RESPAWN_TEST_DATA_DIR", RESPAWN_TEST_DATA_DIR) + "/" + name;
}

std::string test_device() {
  const char* device = std::getenv("RESPAWN_TEST_DEVICE");
  return device && *device ? device : "cpu";
}

std::vector<std::string> fake_args(std::vector<std::string> extra) {
  std::vector<std::string> args = {"--worker-bin", bin_path("respawn-fake-worker"), "--model",
                                   model_path("demo.pt")};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

namespace {

client::Endpoint loopback(int port) {
  return {"127.0.0.1", std::to_string(port)};
}

HttpResult to_result(client::Reply reply) {
  HttpResult result;
  result.status = reply.status;
  result.body = std::move(reply.body);
  result.headers = std::move(reply.headers);
  result.error = std::move(reply.error);
  return result;
}

}  // namespace

HttpResult http_request(int port, const std::string& method, const std::string& target,
                        const std::string& body, const std::map<std::string, std::string>& headers,
                        std::chrono::milliseconds timeout) {
  client::Request request;
  request.method = method;
  request.target = target;
  request.body = body;
  request.headers = headers;
  return to_result(client::http_request(loopback(port), request, timeout));
}

HttpResult raw_request(int port, const std::string& bytes) {
  return to_result(client::send_raw(loopback(port), bytes, std::chrono::seconds(10)));
}

bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), {});
  const auto paren = content.rfind(')');
  if (paren == std::string::npos || paren + 2 >= content.size()) return true;
  const char state = content[paren + 2];
  return state == 'Z' || state == 'X';
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

std::vector<HttpResult> post_all_while_the_worker_sleeps(
    const Server& server, const std::string& target, const std::string& blocker,
    const std::vector<std::string>& bodies,
    const std::vector<std::map<std::string, std::string>>& headers) {
  auto slow = std::async(std::launch::async, [&] {
    return http_request(server.port(), "POST", target, blocker, {{"X-Respawn-Fault", "slow:1500"}});
  });
  if (!wait_until([&] { return server.metric("respawn_requests_inflight") >= 1; },
                  std::chrono::seconds(10))) {
    slow.wait();
    throw std::runtime_error("the slow request never reached the worker");
  }
  std::vector<std::future<HttpResult>> futures;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    const auto own = i < headers.size() ? headers[i] : std::map<std::string, std::string>();
    futures.push_back(std::async(std::launch::async, [&server, target, body = bodies[i], own] {
      return http_request(server.port(), "POST", target, body, own);
    }));
  }
  std::vector<HttpResult> results;
  for (auto& f : futures) results.push_back(f.get());
  const auto first = slow.get();
  if (first.status != 200) throw std::runtime_error("the slow request failed: " + first.body);
  return results;
}

std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> data;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("data: ", 0) == 0) data.push_back(line.substr(6));
  }
  return data;
}

int batch_size(const HttpResult& result) {
  const auto it = result.headers.find("x-respawn-batch-size");
  return it == result.headers.end() ? 0 : std::stoi(it->second);
}

double metric_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

TempDir::TempDir(const std::string& prefix) {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() / (prefix + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

Server::Server(const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env) {
  client::ServerProcessOptions options;
  options.argv = {bin_path("respawn"), "serve", "--port", "0"};
  // RESPAWN_TEST_DEVICE=cuda runs the suite's real workers on the GPU (docs/gpu.md).
  if (std::find(args.begin(), args.end(), "--device") == args.end()) {
    options.argv.insert(options.argv.end(), {"--device", test_device()});
  }
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.env = env;
  options.stderr_path = (dir_.path() / "stderr.log").string();
  options.working_dir = dir_.path().string();
  const auto endpoint = process_.start(options);  // on failure, already killed and reaped
  if (!endpoint) {
    throw std::runtime_error("server did not start: " + endpoint.error().message +
                             "\nstderr: " + log());  // dir_ goes with the half-made Server
  }
  port_ = std::stoi(endpoint->port);
}

Server::~Server() {
  const pid_t worker = process_.exited() ? 0 : worker_pid();
  stop(SIGTERM);
  // The worker dies with the supervisor; make sure of it so no test leaves one behind.
  if (worker > 0 && !wait_until([&] { return process_gone(worker); }, std::chrono::seconds(5))) {
    ::kill(worker, SIGKILL);
  }
}

int Server::stop(int sig, std::chrono::milliseconds timeout) {
  return process_.stop(sig, timeout);
}

bool Server::wait_ready(std::chrono::milliseconds timeout) const {
  return wait_until([&] { return get("/v2/health/ready").status == 200; }, timeout);
}

nlohmann::json Server::workers() const {
  return get("/admin/workers").json();
}

pid_t Server::worker_pid() const {
  const auto w = workers();
  return w.is_object() ? w.value("pid", 0) : 0;
}

double Server::metric(const std::string& series) const {
  return metric_value(get("/metrics").body, series);
}

std::string Server::log() const {
  return read_file(dir_.path() / "stderr.log");
}

}  // namespace respawn::test
