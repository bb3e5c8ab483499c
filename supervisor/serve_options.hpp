#pragma once
// Everything `respawn serve` can be told on its command line, with defaults, and how the
// defaults that depend on where the binary lives (the bundled model, the worker binary) are
// filled in. Pure functions over values; thread-safe.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "respawn/policy.hpp"
#include "respawn/result.hpp"

namespace respawn {

struct ServeOptions {
  std::string model;       // TorchScript file; empty = the bundled demo model
  std::string model_name;  // empty = the model file's stem
  // A Hugging Face tokenizer.json, or a folder with it (and tokenizer_config.json,
  // generation_config.json); empty = byte-level
  std::string tokenizer;
  std::string task;    // generate | tensor; empty = what the model declares
  std::string labels;  // class labels for classification answers, one per line; empty = none
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  std::string device = "auto";
  std::size_t max_queue = 64;
  std::string worker_bin;  // empty = respawn-worker next to respawn
  // JSON bodies cost the supervisor several times their size in memory and parse time: the
  // default fits the bundled models' requests with room to spare (docs/http-api.md).
  std::size_t max_body_bytes = 8u << 20;
  std::uint32_t header_timeout_ms = 30000;  // also the keep-alive idle limit
  std::uint32_t read_timeout_ms = 30000;    // the body, once the headers are in
  int worker_threads = 0;
  std::string config_file;  // TOML with policy knobs (docs/policy.md)
  std::string admin_token;  // when set, admin calls need "Authorization: Bearer <token>"
  bool enable_fault_injection = false;  // honour X-Respawn-Fault and PUT /admin/fault
  bool allow_client_shm = false;        // Triton's system shared memory extension
  // PYTORCH_CUDA_ALLOC_CONF for the workers (e.g. "expandable_segments:True"); empty = the
  // workers inherit the supervisor's own, if it has one.
  std::string cuda_alloc_conf;
  // OMP_WAIT_POLICY for the workers: "PASSIVE" unless the environment already names one (then
  // empty, and the inherited value stands). libtorch's OpenMP threads otherwise spin between
  // parallel regions, and on a machine with other busy processes a spinning thread waits for a
  // descheduled one: decode steps of a few ms took up to 90 ms (docs/performance.md).
  std::string omp_wait_policy;
  Policy policy;      // resolved: flag > env > file > default
  bool help = false;  // --help was given: print the usage and exit 0
};

// Parses the arguments that follow `serve` and resolves the policy from the flags, the
// RESPAWN_<KNOB> variables in `env` and the --config file. Errors are bad_input.
Result<ServeOptions> parse_serve_options(const std::vector<std::string>& args,
                                         const std::map<std::string, std::string>& env = {});

// Variables a worker gets on top of (or instead of) the supervisor's environment, which it
// otherwise inherits: PYTORCH_CUDA_ALLOC_CONF when --cuda-alloc-conf is set, OMP_WAIT_POLICY
// when the supervisor's environment has none.
std::map<std::string, std::string> worker_environment(const ServeOptions& options);

// Fills model, model_name and worker_bin from the directory that holds the respawn binary.
void resolve_paths(ServeOptions& options, const std::string& exe_dir);

// The command-line help for `serve`.
std::string serve_help();

}  // namespace respawn
