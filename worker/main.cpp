// respawn-worker: loads one TorchScript model and serves it over the socket the supervisor
// handed down as --ipc-fd. Not meant to be started by hand.
#include <sys/prctl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <thread>

#include "model_runner.hpp"
#include "respawn/fault.hpp"
#include "respawn/logging.hpp"
#include "respawn/text_files.hpp"
#include "worker_server.hpp"

int main(int argc, char** argv) {
  CLI::App app{"respawn-worker: serves one TorchScript model to the respawn supervisor"};
  respawn::worker::LoadOptions options;
  int fd = -1;
  pid_t parent = 0;
  app.add_option("--ipc-fd", fd, "inherited socket to the supervisor")->required();
  app.add_option("--parent-pid", parent, "exit if this process is not our parent");
  app.add_option("--model", options.model_path, "TorchScript file")->required();
  app.add_option("--task", options.task, "generate | tensor (default: the model's own)");
  app.add_option("--device", options.device, "auto | cuda | cpu")
      ->check(CLI::IsMember({"auto", "cuda", "cpu"}));
  app.add_option("--threads", options.threads, "intra-op threads (0 = default)");
  std::string tokenizer_path;
  app.add_option(
      "--tokenizer", tokenizer_path,
      "a tokenizer file, a folder with one, or a model file carrying one: generations use its ids");
  bool fault_injection = false;
  std::string start_fault;
  app.add_flag("--enable-fault-injection", fault_injection, "obey injected faults (tests)");
  app.add_option("--fault", start_fault, "fail_load | crash_on_load | slow_load:MS");
  CLI11_PARSE(app, argc, argv);

  respawn::init_logging("worker");
  // If the supervisor dies, so do we, even mid-forward: a worker must never outlive it on a GPU.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent != 0 && ::getppid() != parent) return 1;  // it died before prctl took effect
  std::signal(SIGPIPE, SIG_IGN);

  if (fault_injection && !start_fault.empty()) {
    const auto fault = respawn::parse_fault(start_fault);
    using Kind = respawn::Fault::Kind;
    if (!fault || !respawn::is_start_fault(*fault)) {
      spdlog::error("unknown start fault '{}'", start_fault);
    } else if (fault->kind == Kind::fail_load) {
      respawn::worker::report_load_failure(fd, "injected load failure");
      return 2;
    } else if (fault->kind == Kind::crash_on_load) {
      std::abort();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(fault->ms));
    }
  }
  std::optional<respawn::Tokenizer> tokenizer;
  std::unique_ptr<respawn::worker::ModelRunner> runner;
  try {
    if (!tokenizer_path.empty()) tokenizer = respawn::TextFiles(tokenizer_path).tokenizer();
    runner = respawn::worker::ModelRunner::load(options);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    respawn::worker::report_load_failure(fd, e.what());
    return 2;
  }
  spdlog::info("ready: task={} device={} load_ms={:.0f}", runner->task(),
               runner->info()["device"].get<std::string>(),
               runner->info()["load_ms"].get<double>());
  return respawn::worker::WorkerServer(fd, *runner, fault_injection,
                                       tokenizer ? &*tokenizer : nullptr)
      .run();
}
