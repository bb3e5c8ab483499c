#include "serve_options.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>

namespace respawn {
namespace {

std::string dashed(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

// Every policy knob is a flag named after it (max_requests -> --max-requests). Values are
// kept raw here and parsed by the policy table, like env and file values.
void add_policy_flags(CLI::App& app, std::map<std::string, std::string>& raw) {
  for (const auto& knob : policy_knobs()) {
    auto* option = app.add_option("--" + dashed(std::string(knob.name)),
                                  raw[std::string(knob.name)], std::string(knob.help));
    if (knob.type == KnobType::boolean) option->expected(0, 1);  // bare --prestart-spare = on
  }
}

void add_options(CLI::App& app, ServeOptions& o) {
  app.add_option("--model", o.model, "TorchScript model file (default: the bundled demo)");
  app.add_option("--tokenizer", o.tokenizer,
                 "Hugging Face tokenizer.json (or SentencePiece tokenizer.model), or a folder "
                 "with it, tokenizer_config.json and generation_config.json (default: the ones "
                 "the model file carries, else byte-level)");
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
  app.add_option("--config", o.config_file, "TOML file with policy knobs (docs/policy.md)")
      ->check(CLI::ExistingFile);
  app.add_option("--admin-token", o.admin_token,
                 "require 'Authorization: Bearer TOKEN' on /admin calls (else loopback only)");
  app.add_flag("--enable-fault-injection", o.enable_fault_injection,
               "let X-Respawn-Fault and PUT /admin/fault make workers fail (tests, chaos)");
  app.add_option("--labels", o.labels,
                 "class labels, one per line (line i names class i), for Triton's "
                 "classification extension (outputs asked for with \"classification\": k)")
      ->check(CLI::ExistingFile);
  app.add_flag("--allow-client-shm", o.allow_client_shm,
               "let clients register system shared memory regions for infer tensors "
               "(Triton's extension; any shared memory object this user can open)");
  app.add_option("--cuda-alloc-conf", o.cuda_alloc_conf,
                 "PYTORCH_CUDA_ALLOC_CONF for the workers, e.g. expandable_segments:True "
                 "(default: the supervisor's own, if set; docs/gpu.md)");
}

}  // namespace

Result<ServeOptions> parse_serve_options(const std::vector<std::string>& args,
                                         const std::map<std::string, std::string>& env) {
  ServeOptions options;
  std::map<std::string, std::string> raw;
  CLI::App app{"respawn serve"};
  add_options(app, options);
  add_policy_flags(app, raw);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    options.help = true;
    return options;
  } catch (const CLI::ParseError& e) {
    return make_error(ErrorKind::bad_input, e.what());
  }
  std::map<std::string, std::string> flags;
  for (const auto& knob : policy_knobs()) {
    const std::string name(knob.name);
    auto* option = app.get_option("--" + dashed(name));
    if (option->count() == 0) continue;
    flags[name] = raw[name].empty() && knob.type == KnobType::boolean ? "true" : raw[name];
  }
  auto policy = resolve_policy(options.config_file, env, flags);
  if (!policy) return policy.error();
  options.policy = *policy;
  if (env.count("OMP_WAIT_POLICY") == 0) options.omp_wait_policy = "PASSIVE";
  return options;
}

std::map<std::string, std::string> worker_environment(const ServeOptions& options) {
  std::map<std::string, std::string> env;
  if (!options.cuda_alloc_conf.empty()) env["PYTORCH_CUDA_ALLOC_CONF"] = options.cuda_alloc_conf;
  if (!options.omp_wait_policy.empty()) env["OMP_WAIT_POLICY"] = options.omp_wait_policy;
  return env;
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
  std::map<std::string, std::string> raw;
  CLI::App app{"respawn serve: serve one TorchScript model over HTTP"};
  add_options(app, options);
  add_policy_flags(app, raw);
  return app.help();
}

}  // namespace respawn
