#include "serve_options.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>

namespace respawn {
namespace {

void add_options(CLI::App& app, ServeOptions& o) {
  app.add_option("--model", o.model, "TorchScript model file (default: the bundled demo)");
  app.add_option("--model-name", o.model_name, "name in the URLs (default: the file's stem)");
  app.add_option("--task", o.task, "generate | tensor (default: what the model declares)")
      ->check(CLI::IsMember({"generate", "tensor"}));
  app.add_option("--host", o.host, "address to listen on");
  app.add_option("--port", o.port, "port to listen on; 0 picks a free one");
  app.add_option("--device", o.device, "auto | cuda | cpu")
      ->check(CLI::IsMember({"auto", "cuda", "cpu"}));
  app.add_option("--max-queue", o.max_queue, "requests waiting for the worker before 503");
  app.add_option("--worker-bin", o.worker_bin, "worker binary (default: next to respawn)");
  app.add_option("--max-body-bytes", o.max_body_bytes, "largest request body accepted (413)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
  app.add_option("--header-timeout-ms", o.header_timeout_ms,
                 "time to receive a request's headers; also closes idle keep-alive connections")
      ->check(CLI::Range(100u, 3600000u));
  app.add_option("--read-timeout-ms", o.read_timeout_ms,
                 "time to receive a request's body (and to write the response)")
      ->check(CLI::Range(100u, 3600000u));
  app.add_option("--worker-threads", o.worker_threads, "libtorch intra-op threads (0 = default)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--restart-backoff-ms", o.restart_backoff_ms, "first delay after a failed start");
  app.add_option("--restart-backoff-max-ms", o.restart_backoff_max_ms, "longest restart delay");
}

}  // namespace

Result<ServeOptions> parse_serve_options(const std::vector<std::string>& args) {
  ServeOptions options;
  CLI::App app{"respawn serve"};
  add_options(app, options);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return make_error(ErrorKind::bad_input, e.what());
  }
  if (options.restart_backoff_max_ms < options.restart_backoff_ms) {
    return make_error(ErrorKind::bad_input,
                      "--restart-backoff-max-ms must be at least --restart-backoff-ms");
  }
  return options;
}

void resolve_paths(ServeOptions& o, const std::string& exe_dir) {
  namespace fs = std::filesystem;
  if (o.model.empty()) {
    o.model = (fs::path(exe_dir) / ".." / "share" / "respawn" / "models" / "demo.pt")
                  .lexically_normal()
                  .string();
  }
  if (o.model_name.empty()) o.model_name = fs::path(o.model).stem().string();
  if (o.worker_bin.empty()) o.worker_bin = (fs::path(exe_dir) / "respawn-worker").string();
}

std::string serve_help() {
  ServeOptions options;
  CLI::App app{"respawn serve: serve one TorchScript model over HTTP"};
  add_options(app, options);
  return app.help();
}

}  // namespace respawn
