// respawn: the supervisor. `respawn [serve] [options]` serves one TorchScript model over HTTP
// through a disposable worker process. This file only parses arguments and wires objects.
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>

#include "http/api.hpp"
#include "http/http_server.hpp"
#include "http/text_model.hpp"
#include "http/triton.hpp"
#include "lifecycle/worker_manager.hpp"
#include "respawn/logging.hpp"
#include "respawn/text_files.hpp"
#include "scheduling/scheduler.hpp"
#include "serve_options.hpp"
#include "smoke/smoke_runner.hpp"

namespace {

std::string exe_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

// The running binary, for `smoke` to start `serve` from.
std::string self_exe() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("/proc/self/exe") : exe.string();
}

int usage(int code) {
  (code == 0 ? std::cout : std::cerr)
      << "usage: respawn [serve] [options]\n"
      << "       respawn smoke --suite FILE.jsonl [--restart-per-test] [--url URL]\n"
      << "                     [--report-dir DIR] [-- SERVE_OPTIONS]  (respawn smoke --help)\n\n"
      << respawn::serve_help();
  return code;
}

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// Every connection is a descriptor: the soft limit (often 1024) is what makes a busy server run
// out, while the hard limit the operator set is usually far higher.
void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const auto soft = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    spdlog::info("open file limit raised from {} to {}", soft, limit.rlim_max);
  }
}

// glibc raises its mmap and trim thresholds each time a large block is freed (up to 32/64 MiB),
// after which the memory of a large request stays in the heap for good, in the helper thread's
// arena above all. Fixed thresholds keep both bounded: blocks from 4 MiB on live in mmap and go
// back at free(), and at most 8 MiB of free heap top is kept, so the supervisor returns to its
// baseline after a large body (docs/architecture.md). Below 4 MiB (a 224x224 FP32 image is
// 600 KB) a request's body, IPC blob and frame reuse heap memory: in mmap, each would be fresh
// pages, faulted in and zeroed on every request (bench/image.py, docs/performance.md).
void fix_malloc_thresholds() {
  ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 8 << 20);
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
  auto text = std::make_shared<const respawn::TextModel>();
  // A model file that carries its tokenizer (extra files) serves with it, alone.
  if (options.tokenizer.empty() && respawn::TextFiles::embedded_in(options.model)) {
    spdlog::info("using the tokenizer files carried in {}", options.model);
    options.tokenizer = options.model;
  }
  if (!options.tokenizer.empty()) {
    auto loaded = respawn::TextModel::load(options.tokenizer);
    if (!loaded) {
      spdlog::error("--tokenizer: {}", loaded.error().message);
      return 2;
    }
    text = std::move(*loaded);
  }
  std::vector<std::string> labels;
  if (!options.labels.empty()) {
    auto read = respawn::triton::read_labels(options.labels);
    if (!read) {
      spdlog::error("--labels: {}", read.error().message);
      return 2;
    }
    labels = std::move(*read);
    spdlog::info("{} class labels from {}", labels.size(), options.labels);
  }
  std::signal(SIGPIPE, SIG_IGN);
  raise_open_file_limit();
  fix_malloc_thresholds();
  boost::asio::io_context io(1);
  respawn::Metrics metrics;
  auto manager = std::make_shared<respawn::WorkerManager>(io, options, options.policy, metrics);
  respawn::Scheduler scheduler(io, options.max_queue, manager, metrics);
  respawn::Api api(scheduler, metrics, options);
  api.set_text_model(std::move(text));
  api.set_labels(std::move(labels));
  auto server = std::make_shared<respawn::HttpServer>(io, api, options);
  auto bound = server->listen();
  if (!bound) {
    spdlog::error("{}", bound.error().message);
    return 1;
  }
  std::printf("listening on http://%s:%u\n", url_host(options.host).c_str(), bound->port());
  std::fflush(stdout);
  spdlog::info("serving model '{}' from {}", options.model_name, options.model);
  spdlog::info("policy: {}", respawn::to_json(options.policy).dump());
  manager->start();

  // First SIGTERM/SIGINT: readiness turns 503 and new requests get 503 at once (the listener
  // stays open so that clients hear that rather than a refused connection); queued and
  // in-flight requests finish, for up to drain_timeout_ms. A second signal cuts the drain short.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  int signals_seen = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        const auto drain =
            std::chrono::milliseconds(++signals_seen == 1 ? manager->policy().drain_timeout_ms : 0);
        spdlog::info("signal {}: draining for up to {} ms", signal, drain.count());
        api.stop_events();  // the status page's streams would hold the drain open
        scheduler.drain(drain, [&io, server, manager] {
          server->stop();
          manager->stop([&io] { io.stop(); });
        });
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
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
  if (!args.empty() && args[0] == "smoke") {
    return respawn::run_smoke({args.begin() + 1, args.end()}, self_exe());
  }
  if (!args.empty() && args[0] == "serve") args.erase(args.begin());
  if (!args.empty() && args[0].rfind("-", 0) != 0) {
    std::cerr << "unknown command '" << args[0] << "'\n";
    return usage(2);
  }
  auto options = respawn::parse_serve_options(args, respawn::environment_map());
  if (!options) {
    std::cerr << options.error().message << "\n";
    return usage(2);
  }
  if (options->help) return usage(0);
  return serve(std::move(*options));
}
