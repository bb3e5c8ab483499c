// respawn: the supervisor. `respawn [serve] [options]` serves one TorchScript model over HTTP
// through a disposable worker process. This file only parses arguments and wires objects.
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "api.hpp"
#include "http_server.hpp"
#include "respawn/logging.hpp"
#include "scheduler.hpp"
#include "serve_options.hpp"
#include "worker_slot.hpp"

namespace {

std::string exe_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

int usage(int code) {
  (code == 0 ? std::cout : std::cerr) << "usage: respawn [serve] [options]\n\n"
                                      << respawn::serve_help();
  return code;
}

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

int serve(respawn::ServeOptions options) {
  namespace fs = std::filesystem;
  respawn::resolve_paths(options, exe_dir());
  if (!fs::is_regular_file(options.model)) {
    spdlog::error("model file not found: {}", options.model);
    return 2;
  }
  if (::access(options.worker_bin.c_str(), X_OK) != 0) {
    spdlog::error("worker binary not found or not executable: {}", options.worker_bin);
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context io(1);
  respawn::Metrics metrics;
  auto slot = std::make_shared<respawn::WorkerSlot>(io, options, metrics);
  respawn::Scheduler scheduler(options.max_queue, slot, metrics);
  respawn::Api api(scheduler, metrics, options);
  auto server = std::make_shared<respawn::HttpServer>(io, api, options);
  auto bound = server->listen();
  if (!bound) {
    spdlog::error("{}", bound.error().message);
    return 1;
  }
  std::printf("listening on http://%s:%u\n", url_host(options.host).c_str(), bound->port());
  std::fflush(stdout);
  spdlog::info("serving model '{}' from {}", options.model_name, options.model);
  slot->start();

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", signal);
    server->stop();
    scheduler.close(
        respawn::make_error(respawn::ErrorKind::unavailable, "the server is shutting down"));
    slot->stop([&io] { io.stop(); });
  });
  // Handlers validate untrusted input and must not throw; if one ever does, the connection it
  // served is dropped (its session is released) and the server goes on serving the rest.
  while (true) {
    try {
      io.run();
      break;
    } catch (const std::exception& e) {
      spdlog::error("unexpected exception in a handler (a bug): {}", e.what());
    }
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  respawn::init_logging("respawn");
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help" || args[0] == "help")) {
    return usage(0);
  }
  if (!args.empty() && args[0] == "serve") args.erase(args.begin());
  if (!args.empty() && args[0].rfind("-", 0) != 0) {
    std::cerr << "unknown command '" << args[0] << "'\n";
    return usage(2);
  }
  auto options = respawn::parse_serve_options(args);
  if (!options) {
    std::cerr << options.error().message << "\n";
    return usage(2);
  }
  return serve(std::move(*options));
}
