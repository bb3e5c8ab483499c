// respawn-worker: loads one TorchScript model and serves it over the socket the supervisor
// handed down as --ipc-fd. With --fork-server it is instead the fork server (fork_server.hpp):
// it loads the model into host memory once and forks ready-to-load workers from itself. Not meant
// to be started by hand.
#include <sys/prctl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>

#include "model_runner.hpp"
#include "respawn/fault.hpp"
#include "respawn/fork_server.hpp"
#include "respawn/logging.hpp"
#include "respawn/proc_stats.hpp"
#include "respawn/text_files.hpp"
#include "worker_server.hpp"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

// Ends the process without destructors: tearing down libtorch's registries, the model and (in a
// forked worker) the fork server's copy-on-write heap took 170-240 ms of a recycle, and the
// kernel frees it all at once anyway. Under ASan, LeakSanitizer's check still runs first.
[[noreturn]] void exit_now(int code) {
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
#if defined(__SANITIZE_ADDRESS__)
  __lsan_do_leak_check();
#endif
  ::_exit(code);
}

// What a fork server loaded before forking, inherited by every worker it forks.
struct Preloaded {
  respawn::worker::HostModelPtr model{nullptr, respawn::worker::release};
  std::string tokenizer_path;
  std::optional<respawn::Tokenizer> tokenizer;
};

struct Options {
  respawn::worker::LoadOptions load;
  int fd = -1;
  pid_t parent = 0;
  std::string tokenizer_path;
  bool fault_injection = false;
  std::string start_fault;
  bool fork_server = false;
};

int run(const std::vector<std::string>& args, const Preloaded* preloaded);

// The fork server: loads, says ready, forks until the supervisor closes the socket. A forked
// child goes on as a worker with the command line it was sent.
int fork_server(const Options& o) {
  using respawn::send_control;
  const auto started = Clock::now();
  Preloaded preloaded;
  std::string holds;
  try {
    // Test hooks, obeyed only with fault injection: fail to load; hold the file's bytes (as for
    // a GPU) on cpu too.
    const auto test_hook = [&](const char* name, std::string_view value) {
      const char* set = std::getenv(name);
      return o.fault_injection && set && std::string_view(set) == value;
    };
    if (test_hook("RESPAWN_FORK_SERVER_FAULT", "fail_load")) {
      throw std::runtime_error("injected fork server load failure");
    }
    if (!o.tokenizer_path.empty()) {
      preloaded.tokenizer_path = o.tokenizer_path;
      preloaded.tokenizer = respawn::TextFiles(o.tokenizer_path).tokenizer();
    }
    preloaded.model = respawn::worker::ModelRunner::preload(
        o.load, holds, test_hook("RESPAWN_FORK_SERVER_HOLDS", "file bytes"));
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    send_control(o.fd, {{"type", "error"}, {"message", e.what()}});
    return 2;
  }
  // A thread would not survive a fork (and any lock it held would stay held in the child).
  const int threads = respawn::threads_in_process();
  if (threads != 1) {
    const auto why = "the fork server runs " + std::to_string(threads) +
                     " threads after loading; forking it would be unsafe";
    spdlog::error("{}", why);
    send_control(o.fd, {{"type", "error"}, {"message", why}});
    return 2;
  }
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  spdlog::info("fork server ready: holds the {} of {} ({:.0f} ms, rss {} MB)", holds,
               o.load.model_path, load_ms, respawn::rss_bytes(0) >> 20);
  if (!send_control(o.fd, {{"type", "ready"},
                           {"pid", ::getpid()},
                           {"holds", holds},
                           {"load_ms", load_ms},
                           {"rss_bytes", respawn::rss_bytes(0)}})) {
    return 1;
  }
  auto child = respawn::serve_forks(o.fd);
  if (!child) exit_now(0);  // the supervisor closed the socket
  return run(*child, &preloaded);
}

int worker(const Options& o, const Preloaded* preloaded) {
  if (o.fault_injection && !o.start_fault.empty()) {
    const auto fault = respawn::parse_fault(o.start_fault);
    using Kind = respawn::Fault::Kind;
    if (!fault || !respawn::is_start_fault(*fault)) {
      spdlog::error("unknown start fault '{}'", o.start_fault);
    } else if (fault->kind == Kind::fail_load) {
      respawn::worker::report_load_failure(o.fd, "injected load failure");
      return 2;
    } else if (fault->kind == Kind::crash_on_load) {
      std::abort();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(fault->ms));
    }
  }
  std::optional<respawn::Tokenizer> tokenizer;
  const respawn::Tokenizer* tokens = nullptr;
  std::unique_ptr<respawn::worker::ModelRunner> runner;
  try {
    if (preloaded && preloaded->tokenizer && preloaded->tokenizer_path == o.tokenizer_path) {
      tokens = &*preloaded->tokenizer;
    } else if (!o.tokenizer_path.empty()) {
      tokens = &tokenizer.emplace(respawn::TextFiles(o.tokenizer_path).tokenizer());
    }
    runner =
        respawn::worker::ModelRunner::load(o.load, preloaded ? preloaded->model.get() : nullptr);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    respawn::worker::report_load_failure(o.fd, e.what());
    return 2;
  }
  spdlog::info("ready: task={} device={} load_ms={:.0f}{}", runner->task(),
               runner->info()["device"].get<std::string>(), runner->info()["load_ms"].get<double>(),
               preloaded ? " (forked)" : "");
  exit_now(respawn::worker::WorkerServer(o.fd, *runner, o.fault_injection, tokens).run());
}

int run(const std::vector<std::string>& args, const Preloaded* preloaded) {
  CLI::App app{"respawn-worker: serves one TorchScript model to the respawn supervisor"};
  Options o;
  app.add_option("--ipc-fd", o.fd, "inherited socket to the supervisor")->required();
  app.add_option("--parent-pid", o.parent, "exit if this process is not our parent");
  app.add_option("--model", o.load.model_path, "TorchScript file")->required();
  app.add_option("--task", o.load.task, "generate | tensor (default: the model's own)");
  app.add_option("--device", o.load.device, "auto | cuda | cpu")
      ->check(CLI::IsMember({"auto", "cuda", "cpu"}));
  app.add_option("--threads", o.load.threads, "intra-op threads (0 = default)");
  app.add_option(
      "--tokenizer", o.tokenizer_path,
      "a tokenizer file, a folder with one, or a model file carrying one: generations use its ids");
  app.add_flag("--enable-fault-injection", o.fault_injection, "obey injected faults (tests)");
  app.add_option("--fault", o.start_fault, "fail_load | crash_on_load | slow_load:MS");
  app.add_flag("--fork-server", o.fork_server,
               "be the fork server: load the model into host memory and fork workers on request");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  respawn::init_logging(o.fork_server ? "fork-server" : "worker");
  // If the supervisor dies, so do we, even mid-forward: a worker must never outlive it on a GPU.
  // (A forked worker's parent is the supervisor too: fork_server.hpp.)
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (o.parent != 0 && ::getppid() != o.parent) return 1;  // it died before prctl took effect
  std::signal(SIGPIPE, SIG_IGN);
  return o.fork_server ? fork_server(o) : worker(o, preloaded);
}

}  // namespace

int main(int argc, char** argv) {
  return run(std::vector<std::string>(argv, argv + argc), nullptr);
}
