#pragma once
// The worker's model: a TorchScript module (.pt) or an AOTInductor package (.pt2) loaded once
// onto cuda or cpu, warmed up, and run per request under InferenceMode. The only place libtorch is
// touched (its headers stay in model_runner.cpp). Every libtorch exception is caught here and
// classified into a WorkerError. Not thread-safe: the worker runs one batch at a time on one
// thread.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"
#include "respawn/tensor_codec.hpp"
#include "respawn/worker_error.hpp"

namespace respawn::worker {

struct LoadOptions {
  std::string model_path;
  std::string device = "auto";  // auto | cuda | cpu
  std::string task;             // generate | tensor; empty = what the model's respawn.json says
  int threads = 0;              // intra-op threads; 0 = libtorch's default
};

struct TensorOutputs {
  std::vector<TensorMeta> tensors;
  std::string blob;
};

// Where one forward's time went, for the whole batch (Triton's statistics extension splits
// compute the same way): input = building the arguments (tensors from the blobs, copies to the
// device, concatenation), infer = forward() (on cuda up to a device synchronize, so its kernels
// count here and not in output), output = splitting and encoding the outputs into blobs.
struct ComputeTimes {
  std::uint64_t input_ns = 0;
  std::uint64_t infer_ns = 0;
  std::uint64_t output_ns = 0;
};

struct InferResult {
  std::vector<TensorOutputs> outputs;  // one per request, in the requests' order
  ComputeTimes compute;
};

// One infer request's input tensors; `blob` holds their bytes at each TensorMeta's offset.
struct InferInput {
  const std::vector<TensorMeta>* inputs;
  std::string_view blob;
};

// Memory as the device's allocator sees it (cuda), or the process's RSS (cpu).
struct MemorySample {
  std::uint64_t used_bytes = 0;  // now
  std::uint64_t peak_bytes = 0;  // the most since the last reset_peak_memory()
};

// A model read into host memory by the fork server (fork_server.hpp) before it forks any worker:
// for a worker that will run on cpu the TorchScript module itself (its weights then shared
// copy-on-write with every forked worker), for one that will run on cuda the file's bytes (the
// worker deserializes them onto its device, as a cold load does from the file). Reading it never
// initializes CUDA, starts no thread and runs no forward.
struct HostModel;
void release(HostModel* model);  // a unique_ptr deleter: HostModel is defined with libtorch
using HostModelPtr = std::unique_ptr<HostModel, void (*)(HostModel*)>;

class ModelRunner {
 public:
  // What a fork server holds for `options`: nullptr for an AOTInductor package (its code is
  // loaded in the worker; the fork server still spares it libtorch's start-up). `what` is set to
  // "module", "file bytes" or "nothing". `bytes` holds the file's bytes whatever the device (the
  // tests use it to run that path on cpu). Throws std::runtime_error when the file cannot be read.
  static HostModelPtr preload(const LoadOptions& options, std::string& what, bool bytes = false);
  // Loads, evals and warms up the model, from `host` when it holds this model file (a forked
  // worker), else from the file. Throws std::runtime_error with the reason on failure.
  static std::unique_ptr<ModelRunner> load(const LoadOptions& options,
                                           const HostModel* host = nullptr);
  ~ModelRunner();

  // What the ready frame reports: task, device, inputs/outputs (respawn.json's; for a TorchScript
  // tensor model without them, what forward's schema says: forward_schema.hpp), load time, memory:
  // "memory_bytes" (the base the supervisor's memory budget starts from: on cuda the allocated
  // bytes after load and warm-up, on cpu the RSS), "memory" (memory_report() after warm-up),
  // "rss_bytes", "cuda_build" (built_with_cuda()), "cuda_version" (a CUDA build),
  // "libtorch_version", "model_format" (torchscript | aoti_package) and, when --device auto fell
  // back to cpu, "device_fallback" (why).
  const nlohmann::json& info() const;
  const std::string& task() const;
  std::size_t max_context() const;

  // Whether requests may be stacked along dim 0: the model declares its inputs in respawn.json
  // and every one has a free (-1) first dimension.
  bool batchable() const;
  // Runs the requests as one forward, concatenated along dim 0 (BYTES inputs: their lists
  // concatenated), and splits every output back by each request's rows. Any failure fails the
  // whole call (the caller decides how to retry).
  Result<InferResult, WorkerError> infer(const std::vector<InferInput>& requests);
  // Next-token logits for several sequences in one forward (continuous batching): right-padded
  // to the longest, each read at its own last position. Exact for causal models, whose logits
  // at position t never depend on later positions; the contract for a generate model.
  Result<std::vector<std::vector<float>>, WorkerError> next_token_logits(
      const std::vector<const std::vector<std::int64_t>*>& contexts);

  // Memory, measured per batch: on cuda the caching allocator's allocated bytes (now, and the
  // peak since reset_peak_memory(), which resets the allocator's peak stats); on cpu the
  // process's RSS and its high-water mark. A build without CUDA code (RESPAWN_WITH_CUDA unset)
  // always reports RSS.
  // The model's KV-cache methods, when it offers them (respawn.json "kv_cache" and exported
  // prefill/step methods; see scripts/make_models.py). The cache has `slots` rows, one per
  // running sequence; each decode step then runs one new token per sequence instead of its
  // whole context.
  bool has_kv_cache() const;
  void allocate_kv_cache(std::size_t slots);  // drops what the cache held
  // Logits after ids (at most max_context() of them), filling cache slot `slot`.
  Result<std::vector<float>, WorkerError> prefill(const std::vector<std::int64_t>& ids,
                                                  std::size_t slot);
  struct DecodeRow {
    std::int64_t token;     // the sequence's last token
    std::int64_t position;  // its position (< max_context())
    std::int64_t slot;
  };
  Result<std::vector<std::vector<float>>, WorkerError> decode_step(
      const std::vector<DecodeRow>& rows);

  void reset_peak_memory();
  MemorySample memory() const;
  // cuda: synchronizes the device and hands the caching allocator's unused blocks back to the
  // driver (also done after an out-of-memory failure); cpu: nothing. Never throws.
  void release_cached_memory();
  // The GPU memory results report (gpu_memory_bytes): the allocator's allocated bytes now, i.e.
  // the model plus anything a request left behind; 0 on cpu.
  std::uint64_t gpu_memory_bytes() const;
  // A snapshot for the ready frame and logs. cuda: {"device", "allocated_bytes",
  // "reserved_bytes", "peak_allocated_bytes", "peak_reserved_bytes" (since the last reset),
  // "device_free_bytes", "device_total_bytes" (cudaMemGetInfo: the whole card, every process),
  // "rss_bytes"}; cpu: {"device", "rss_bytes", "peak_rss_bytes"}.
  nlohmann::json memory_report() const;
  // Whether this binary was built with the CUDA memory code (RESPAWN_WITH_CUDA).
  static bool built_with_cuda();
  // Tries an allocation no device can satisfy and returns how that failure classifies (for
  // fault injection: a real allocator failure, not a simulated one).
  WorkerError allocate_too_much();
  // cuda: launches a kernel that writes to an address no allocation owns and returns how the
  // (sticky) failure classifies; cpu: bad_input. For fault injection.
  WorkerError launch_illegal_memory_access();

  struct Impl;

 private:
  explicit ModelRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace respawn::worker
