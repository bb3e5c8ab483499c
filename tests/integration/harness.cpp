#include "harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace respawn::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

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

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Connects to 127.0.0.1:port, lets `write` send the request, and reads one response, all within
// `timeout`: Beast's stream timer closes the socket when it passes, which ends a read that the
// server never answers (SO_RCVTIMEO does not bound Asio's reads). Status 0 when no complete
// response came.
template <typename Write>
HttpResult exchange(int port, std::chrono::milliseconds timeout, Write write) {
  HttpResult result;
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256u << 20);
  stream.expires_after(timeout);
  const auto on_read = [&](beast::error_code ec, std::size_t) {
    if (ec) return;
    const auto& res = parser.get();
    result.status = res.result_int();
    result.body = res.body();
    for (const auto& field : res) {
      result.headers[lower(std::string(field.name_string()))] = std::string(field.value());
    }
  };
  const auto on_written = [&](beast::error_code ec, std::size_t) {
    if (!ec) http::async_read(stream, buffer, parser, on_read);
  };
  stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                       [&](beast::error_code ec) {
                         if (!ec) write(stream, on_written);
                       });
  io.run();
  return result;
}

}  // namespace

HttpResult http_request(int port, const std::string& method, const std::string& target,
                        const std::string& body, const std::map<std::string, std::string>& headers,
                        std::chrono::milliseconds timeout) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::connection, "close");
  if (!body.empty() || (method != "GET" && method != "HEAD")) {
    req.set(http::field::content_type, "application/json");  // admin writes require it
  }
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = body;
  req.prepare_payload();
  return exchange(port, timeout, [&](beast::tcp_stream& stream, auto done) {
    http::async_write(stream, req, done);
  });
}

HttpResult raw_request(int port, const std::string& bytes) {
  return exchange(port, std::chrono::seconds(10), [&](beast::tcp_stream& stream, auto done) {
    asio::async_write(stream, asio::buffer(bytes), done);
  });
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

Server::Server(const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env) {
  std::random_device rd;
  dir_ = std::filesystem::temp_directory_path() / ("respawn-test-" + std::to_string(rd()));
  std::filesystem::create_directories(dir_);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  const std::string exe = bin_path("respawn");
  const std::string err_path = (dir_ / "stderr.log").string();
  std::vector<std::string> argv_s = {exe, "serve", "--port", "0"};
  // RESPAWN_TEST_DEVICE=cuda runs the suite's real workers on the GPU (docs/gpu.md).
  if (std::find(args.begin(), args.end(), "--device") == args.end()) {
    argv_s.insert(argv_s.end(), {"--device", test_device()});
  }
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(err, STDERR_FILENO);
    if (::chdir(dir_.c_str()) != 0) ::_exit(126);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (seen.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  const auto colon = seen.rfind(':');
  if (seen.rfind("listening on http://", 0) != 0 || colon == std::string::npos) {
    stop(SIGKILL);
    throw std::runtime_error("server did not start; stdout: " + seen + "\nstderr: " + log());
  }
  port_ = std::stoi(seen.substr(colon + 1));
}

Server::~Server() {
  const pid_t worker = exited_ ? 0 : worker_pid();
  stop(SIGTERM);
  // The worker dies with the supervisor; make sure of it so no test leaves one behind.
  if (worker > 0 && !wait_until([&] { return process_gone(worker); }, std::chrono::seconds(5))) {
    ::kill(worker, SIGKILL);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

int Server::stop(int sig, std::chrono::milliseconds timeout) {
  if (exited_ || pid_ <= 0) return -1;
  ::kill(pid_, sig);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  exited_ = true;
  return -1;
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
  std::ifstream in(dir_ / "stderr.log");
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace respawn::test
