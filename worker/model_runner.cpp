#include "model_runner.hpp"

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <torch/version.h>

// RESPAWN_WITH_CUDA is set by worker/CMakeLists.txt when the worker is built with its CUDA code
// (the default; a CUDA libtorch). With RESPAWN_CUDA=OFF none of the CUDA code below is compiled.
#if RESPAWN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

#include <spdlog/spdlog.h>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "error_classifier.hpp"
#include "forward_schema.hpp"
#include "host_model.hpp"
#include "respawn/proc_stats.hpp"
#include "tensor_io.hpp"
#include "torch_types.hpp"

// c10::AcceleratorError (a failed CUDA call, with its cudaError_t) came with libtorch 2.8.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
#define RESPAWN_HAS_ACCELERATOR_ERROR 1
#else
#define RESPAWN_HAS_ACCELERATOR_ERROR 0
#endif

namespace respawn::worker {

#if RESPAWN_WITH_CUDA
// The rules in error_classifier.cpp name these codes without including CUDA's headers.
static_assert(cuda_code::memory_allocation == cudaErrorMemoryAllocation);
static_assert(cuda_code::invalid_value == cudaErrorInvalidValue);
static_assert(cuda_code::invalid_configuration == cudaErrorInvalidConfiguration);
static_assert(cuda_code::launch_out_of_resources == cudaErrorLaunchOutOfResources);
static_assert(cuda_code::illegal_address == cudaErrorIllegalAddress);
static_assert(cuda_code::launch_failure == cudaErrorLaunchFailure);
static_assert(cuda_code::device_assert == cudaErrorAssert);
#endif

namespace {

using Clock = std::chrono::steady_clock;

WorkerError bad_input(std::string message) {
  return WorkerError{WorkerErrorKind::bad_input, std::move(message), true};
}

// Runs fn and turns any exception from libtorch into a classified WorkerError.
template <typename T, typename Fn>
Result<T, WorkerError> guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const c10::OutOfMemoryError& e) {
    return classify_failure(ExceptionFamily::out_of_memory, e.what());
  } catch (const std::bad_alloc& e) {
    return classify_failure(ExceptionFamily::out_of_memory, e.what());
  } catch (const c10::IndexError& e) {
    return classify_failure(ExceptionFamily::input, e.what());
  } catch (const c10::ValueError& e) {
    return classify_failure(ExceptionFamily::input, e.what());
  } catch (const c10::TypeError& e) {
    return classify_failure(ExceptionFamily::input, e.what());
#if RESPAWN_HAS_ACCELERATOR_ERROR
  } catch (const c10::AcceleratorError& e) {
    return classify_failure(ExceptionFamily::torch_other, e.what(), e.get_error_code());
#endif
  } catch (const c10::Error& e) {
    return classify_failure(ExceptionFamily::torch_other, e.what());
  } catch (const std::exception& e) {
    return classify_failure(ExceptionFamily::other, e.what());
  }
}

#if RESPAWN_WITH_CUDA
struct CudaMemory {
  std::uint64_t allocated = 0;
  std::uint64_t peak_allocated = 0;
  std::uint64_t reserved = 0;
  std::uint64_t peak_reserved = 0;
};

// The caching allocator's own accounting: what tensors hold (allocated) and what it holds from
// the driver (reserved = allocated + cached). Not the CUDA context, nor other processes.
CudaMemory read_cuda_memory(c10::DeviceIndex index) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  // Index 0 is StatType::AGGREGATE (all pools) in every libtorch; the enum itself moved between
  // namespaces in 2.x, the index did not.
  const auto& allocated = stats.allocated_bytes[0];
  const auto& reserved = stats.reserved_bytes[0];
  const auto bytes = [](std::int64_t n) {
    return static_cast<std::uint64_t>(std::max<std::int64_t>(n, 0));
  };
  return {bytes(allocated.current), bytes(allocated.peak), bytes(reserved.current),
          bytes(reserved.peak)};
}
#endif

// Every declared input has a free (-1) first dimension, so requests can be stacked along it.
bool spec_has_batch_dim(const nlohmann::json& spec) {
  const auto& inputs = spec.value("inputs", nlohmann::json());
  if (!inputs.is_array() || inputs.empty()) return false;
  for (const auto& in : inputs) {
    const auto shape = in.value("shape", std::vector<std::int64_t>{});
    if (shape.empty() || shape[0] != -1) return false;
  }
  return true;
}

std::uint64_t nanoseconds(Clock::duration d) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  return nlohmann::json(shape).dump();
}

// Checks one input against its declared spec entry: datatype, rank and the fixed dims.
std::optional<WorkerError> check_against_spec(const TensorMeta& in, const nlohmann::json& spec) {
  const std::string want_type = spec.value("datatype", "");
  if (want_type != to_string(in.datatype)) {
    return bad_input("input '" + in.name + "' must be " + want_type + ", got " +
                     std::string(to_string(in.datatype)));
  }
  const auto want_shape = spec.value("shape", std::vector<std::int64_t>{});
  bool match = want_shape.size() == in.shape.size();
  for (std::size_t i = 0; match && i < want_shape.size(); ++i) {
    match = want_shape[i] < 0 || want_shape[i] == in.shape[i];
  }
  if (!match) {
    return bad_input("input '" + in.name + "' must have shape " + shape_string(want_shape) +
                     " (-1 = any), got " + shape_string(in.shape));
  }
  return std::nullopt;
}

// Why `--device auto` finds no GPU, for the log and the ready frame.
std::string cuda_unavailable_reason() {
#if RESPAWN_WITH_CUDA
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err) + " (" +
           cudaGetErrorName(err) + ")";
  }
  if (count == 0) return "the CUDA runtime sees no device";
  return "libtorch's CUDA support is not loaded (was libtorch_cuda linked? docs/gpu.md)";
#else
  return "this respawn-worker was built without CUDA (RESPAWN_CUDA=OFF; docs/gpu.md)";
#endif
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

struct ModelRunner::Impl {
  // The model: a TorchScript module, or an AOTInductor package (.pt2) when `aoti` is set.
  torch::jit::Module module;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> aoti;
  std::string device_fallback;  // why `--device auto` runs on cpu; empty otherwise
  torch::Device device{torch::kCPU};
  nlohmann::json spec = nlohmann::json::object();
  nlohmann::json info;
  std::string task;
  std::size_t max_context = 1024;
  bool batchable = false;  // see ModelRunner::batchable()
  // forward's declared arguments and results (a TorchScript model; forward_schema.hpp).
  std::optional<ForwardSchema> schema;
  // The KV cache, when the model offers prefill/step: [layers, slots, heads, context, head_dim].
  bool kv = false;
  std::int64_t kv_layers = 0, kv_heads = 0, kv_head_dim = 0;
  torch::Tensor k_cache, v_cache;

  void allocate_kv_cache(std::size_t slots) {
    c10::InferenceMode guard;  // written in place under InferenceMode later
    const auto options = torch::dtype(torch::kFloat32).device(device);
    const std::vector<std::int64_t> shape = {kv_layers, static_cast<std::int64_t>(slots), kv_heads,
                                             static_cast<std::int64_t>(max_context), kv_head_dim};
    k_cache = torch::zeros(shape, options);
    v_cache = torch::zeros(shape, options);
  }

  torch::IValue call(const char* method, std::vector<torch::IValue> args) {
    c10::InferenceMode guard;
    return module.get_method(method)(std::move(args));
  }

  // Logits [B,V] (any device, any float type) as one host vector per row.
  static std::vector<std::vector<float>> rows_to_host(const torch::Tensor& logits) {
    const auto host = logits.to(torch::kCPU, torch::kFloat32).contiguous();
    std::vector<std::vector<float>> rows(static_cast<std::size_t>(host.size(0)));
    const auto vocab = static_cast<std::size_t>(host.size(1));
    const float* p = host.data_ptr<float>();
    for (std::size_t i = 0; i < rows.size(); ++i)
      rows[i].assign(p + i * vocab, p + (i + 1) * vocab);
    return rows;
  }

  // Whether memory is read from the CUDA caching allocator (a cuda device in a CUDA build).
  bool uses_cuda_allocator() const {
#if RESPAWN_WITH_CUDA
    return device.is_cuda();
#else
    return false;
#endif
  }
  c10::DeviceIndex device_index() const {
    return device.has_index() ? device.index() : 0;
  }

  void release_cached_memory() {
#if RESPAWN_WITH_CUDA
    if (!uses_cuda_allocator()) return;
    try {
      // Blocks freed by kernels still in flight go back to the cache only once those finish.
      c10::cuda::device_synchronize();
      c10::cuda::CUDACachingAllocator::emptyCache();
    } catch (const std::exception& e) {
      // After a sticky CUDA error every call fails; the worker reports that and exits anyway.
      spdlog::warn("could not release cached GPU memory: {}",
                   classify_failure(ExceptionFamily::torch_other, e.what()).message);
    }
#endif
  }

  // guarded(), and after an out-of-memory failure the cache goes back to the driver: the
  // failed batch's blocks were freed into it while the exception unwound, and the next (smaller)
  // batch should start from what the worker really holds.
  template <typename T, typename Fn>
  Result<T, WorkerError> run_guarded(Fn&& fn) {
    auto out = guarded<T>(std::forward<Fn>(fn));
    if (!out && out.error().kind == WorkerErrorKind::oom && uses_cuda_allocator()) {
      release_cached_memory();
    }
    return out;
  }

  // Orders the request's inputs as forward() takes them, validating against the spec if the
  // model declares one.
  Result<std::vector<const TensorMeta*>, WorkerError> order_inputs(
      const std::vector<TensorMeta>& inputs) const {
    std::vector<const TensorMeta*> ordered;
    if (aoti) {
      for (const auto& in : inputs) {
        if (in.datatype == DataType::BYTES) {
          return bad_input("input '" + in.name + "': an AOTInductor package takes tensors only");
        }
      }
    }
    if (!spec.contains("inputs")) {
      // By forward's argument names when the request names exactly those, else as sent.
      std::vector<std::string> names;
      for (const auto& in : inputs) names.push_back(in.name);
      const auto positions = schema ? order_by_schema(schema->args, names) : std::nullopt;
      for (std::size_t k = 0; k < inputs.size(); ++k) {
        ordered.push_back(&inputs[positions ? (*positions)[k] : k]);
      }
      return ordered;
    }
    const auto& declared = spec["inputs"];
    if (declared.size() != inputs.size()) {
      return bad_input("model takes " + std::to_string(declared.size()) + " input(s), got " +
                       std::to_string(inputs.size()));
    }
    for (const auto& want : declared) {
      const std::string name = want.value("name", "");
      const auto it = std::find_if(inputs.begin(), inputs.end(),
                                   [&](const TensorMeta& m) { return m.name == name; });
      if (it == inputs.end()) return bad_input("missing input '" + name + "'");
      if (auto err = check_against_spec(*it, want)) return *err;
      ordered.push_back(&*it);
    }
    return ordered;
  }

  // The ready frame's "inputs" or "outputs": respawn.json's; else, for a TorchScript tensor
  // model, what forward's schema says (forward_schema.hpp); else [].
  nlohmann::json io_metadata(const char* key) const {
    if (spec.contains(key)) return spec[key];
    if (!schema || task != "tensor") return nlohmann::json::array();
    return std::string_view(key) == "inputs" ? schema->inputs : schema->outputs;
  }

  std::string output_name(std::size_t index, std::size_t count) const {
    if (spec.contains("outputs") && spec["outputs"].size() == count) {
      return spec["outputs"][index].value("name", "output__" + std::to_string(index));
    }
    return "output__" + std::to_string(index);
  }

  // On cuda, waits for the kernels forward queued, so that their time counts as infer.
  void synchronize() const {
#if RESPAWN_WITH_CUDA
    if (uses_cuda_allocator()) c10::cuda::device_synchronize();
#endif
  }

  torch::IValue forward(std::vector<torch::IValue> inputs) {
    c10::InferenceMode guard;
    if (aoti) {
      std::vector<torch::Tensor> tensors;
      tensors.reserve(inputs.size());
      for (auto& v : inputs) tensors.push_back(std::move(v).toTensor());
      return aoti->run(tensors);  // a list of tensors: output_tensors() reads it
    }
    return module.forward(std::move(inputs));
  }

  // Two passes: TorchScript's profiling executor optimizes on the second run, so the first
  // client request would otherwise pay for it.
  void warm_up() {
    std::vector<torch::IValue> inputs;
    if (task == "generate") {
      inputs.emplace_back(torch::zeros({1, 8}, torch::dtype(torch::kInt64).device(device)));
    } else if (spec.contains("inputs")) {
      for (const auto& in : spec["inputs"]) {
        auto shape = in.value("shape", std::vector<std::int64_t>{});
        for (auto& d : shape) d = d < 0 ? 1 : d;
        const auto type = parse_datatype(in.value("datatype", "FP32")).value_or(DataType::FP32);
        if (type == DataType::BYTES) {  // one empty string per element
          const auto count = static_cast<std::size_t>(element_count(shape).value_or(1));
          inputs.emplace_back(c10::List<std::string>(std::vector<std::string>(count)));
          continue;
        }
        const auto scalar = to_scalar_type(type);
        if (!scalar) {
          throw std::runtime_error("the spec's datatype " + std::string(to_string(type)) +
                                   " has no tensor type in this libtorch");
        }
        inputs.emplace_back(torch::zeros(shape, torch::dtype(*scalar).device(device)));
      }
    } else {
      spdlog::info("no input spec in the model; skipping the warm-up forward");
      return;
    }
    for (std::size_t k = 0; schema && k < inputs.size() && k < schema->args.size(); ++k) {
      if (auto why = adapt_argument(schema->args[k], inputs[k])) throw std::runtime_error(*why);
    }
    for (int i = 0; i < 2; ++i) forward(inputs);
    if (!kv) return;
    for (int i = 0; i < 2; ++i) {
      call("prefill", {inputs[0], std::int64_t{0}, k_cache, v_cache});
      const auto one = torch::zeros({1}, torch::dtype(torch::kInt64).device(device));
      call("step", {one, one, one, k_cache, v_cache});
    }
  }
};

namespace {

std::string torch_message(const c10::Error& e) {
  return classify_failure(ExceptionFamily::torch_other, e.what()).message;
}

// A TorchScript file onto cuda:0 (--device cuda, or auto with a GPU) or cpu. `auto` falls back
// to cpu, saying why, when there is no GPU or the model cannot load onto it. A fork server's
// module is used as it is on cpu (its weights stay shared with the fork server until written).
void load_torchscript(const LoadOptions& options, ModelRunner::Impl& impl,
                      torch::jit::ExtraFilesMap& extra, const HostModel* host) {
  // Not asked for cpu: the fork server's warm-up must leave CUDA uninitialized.
  const bool cuda = options.device != "cpu" && torch::cuda::is_available();
  if (options.device == "cuda" && !cuda) {
    throw std::runtime_error("--device cuda: " + cuda_unavailable_reason());
  }
  if (options.device != "cpu" && cuda) {
    try {
      impl.device = torch::Device(torch::kCUDA, 0);
      impl.module = read_torchscript(options.model_path, host, impl.device, extra);
      return;
    } catch (const c10::Error& e) {
      if (options.device == "cuda") throw;
      impl.device_fallback = "loading on cuda failed: " + torch_message(e);
    }
  } else if (options.device == "auto") {
    impl.device_fallback = cuda_unavailable_reason();
  }
  if (!impl.device_fallback.empty()) {
    spdlog::warn("--device auto: running on cpu: {}", impl.device_fallback);
  }
  impl.device = torch::Device(torch::kCPU);
  if (host && host->module) {
    impl.module = *host->module;
    extra["respawn.json"] = host->spec;
    return;
  }
  impl.module = read_torchscript(options.model_path, host, impl.device, extra);
}

// An AOTInductor package (torch._inductor.aoti_compile_and_package): its code was compiled for
// one device, which decides where it runs. The spec travels in the package's metadata under
// "respawn.json" (aot_inductor.metadata at compile time; scripts/make_models.py).
void load_aoti_package(const LoadOptions& options, ModelRunner::Impl& impl, std::string& spec) {
  using Loader = torch::inductor::AOTIModelPackageLoader;
  std::unordered_map<std::string, std::string> metadata;
  try {
    metadata = Loader::load_metadata_from_package(options.model_path, "model");
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        "not an AOTInductor package (a .pt2 made by "
        "torch._inductor.aoti_compile_and_package): " +
        torch_message(e));
  }
  const auto compiled_for = metadata.count("AOTI_DEVICE_KEY") ? metadata["AOTI_DEVICE_KEY"] : "";
  if (compiled_for == "cuda") {
    if (options.device == "cpu") {
      throw std::runtime_error(
          "the package was compiled for cuda; it cannot run with --device cpu");
    }
    if (!torch::cuda::is_available()) {
      throw std::runtime_error("the package was compiled for cuda, but there is no GPU: " +
                               cuda_unavailable_reason());
    }
    impl.device = torch::Device(torch::kCUDA, 0);
  } else if (compiled_for == "cpu") {
    if (options.device == "cuda") {
      throw std::runtime_error(
          "the package was compiled for cpu; --device cuda needs one "
          "compiled for cuda (docs/gpu.md)");
    }
    impl.device = torch::Device(torch::kCPU);
  } else {
    throw std::runtime_error("the package was compiled for '" + compiled_for +
                             "'; respawn runs packages compiled for cpu or cuda");
  }
  impl.aoti =
      std::make_unique<Loader>(options.model_path, "model", /*run_single_threaded=*/false,
                               /*num_runners=*/1, impl.device.is_cuda() ? impl.device.index() : -1);
  if (metadata.count("respawn.json")) spec = metadata["respawn.json"];
}

}  // namespace

std::unique_ptr<ModelRunner> ModelRunner::load(const LoadOptions& options, const HostModel* host) {
  const auto started = Clock::now();
  if (host && host->path != options.model_path) host = nullptr;
  const int threads = options.threads > 0 ? options.threads : (host ? host->threads : 0);
  if (threads > 0) torch::set_num_threads(threads);
  auto impl = std::make_unique<Impl>();
  const bool package = ends_with(options.model_path, ".pt2");
  std::string spec;
  try {
    if (package) {
      load_aoti_package(options, *impl, spec);
    } else {
      torch::jit::ExtraFilesMap extra{{"respawn.json", ""}};
      load_torchscript(options, *impl, extra, host);
      impl->module.eval();
      spec = extra["respawn.json"];
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load model " + options.model_path + ": " + torch_message(e));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("cannot load model " + options.model_path + ": " + e.what());
  }
  if (!spec.empty()) {
    impl->spec = nlohmann::json::parse(spec, nullptr, false);
    if (!impl->spec.is_object()) throw std::runtime_error("respawn.json in the model is not JSON");
  }
  impl->task = options.task.empty() ? impl->spec.value("task", "tensor") : options.task;
  if (impl->task != "generate" && impl->task != "tensor") {
    throw std::runtime_error("unknown task '" + impl->task + "'");
  }
  if (package && impl->task != "tensor") {
    throw std::runtime_error("an AOTInductor package serves the tensor task only, not '" +
                             impl->task + "'");
  }
  if (!impl->aoti) {
    if (const auto forward = impl->module.find_method("forward")) {
      impl->schema = read_forward_schema(forward->function().getSchema());
    }
  }
  impl->max_context = impl->spec.value("max_context", std::size_t{1024});
  impl->batchable = spec_has_batch_dim(impl->spec);
  const auto kv = impl->spec.value("kv_cache", nlohmann::json());
  if (impl->task == "generate" && !impl->aoti && kv.is_object() &&
      impl->module.find_method("prefill") && impl->module.find_method("step")) {
    impl->kv = true;
    impl->kv_layers = kv.value("layers", 0);
    impl->kv_heads = kv.value("heads", 0);
    impl->kv_head_dim = kv.value("head_dim", 0);
    impl->allocate_kv_cache(8);  // the default max_batch_size; configure may change it
  }
  const auto loaded = Clock::now();
  try {
    impl->warm_up();
  } catch (const std::exception& e) {
    throw std::runtime_error("warm-up forward failed: " +
                             classify_failure(ExceptionFamily::other, e.what()).message);
  }
  const auto warmed = Clock::now();
  // The worker starts from what it really holds: warm-up's temporaries go back to the driver.
  impl->release_cached_memory();
  if (impl->device.is_cuda() && !built_with_cuda()) {
    spdlog::warn(
        "running on {} but built without the CUDA memory code (RESPAWN_CUDA=OFF or a "
        "CPU-only libtorch at build time): memory is reported as host RSS",
        impl->device.str());
  }
  auto runner = std::unique_ptr<ModelRunner>(new ModelRunner(std::move(impl)));
  auto& info = runner->impl_->info;
  const auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  info = {{"task", runner->impl_->task},
          {"device", runner->impl_->device.str()},
          {"inputs", runner->impl_->io_metadata("inputs")},
          {"outputs", runner->impl_->io_metadata("outputs")},
          {"load_ms", ms(loaded - started)},
          {"warmup_ms", ms(warmed - loaded)},
          {"rss_bytes", rss_bytes(0)},
          {"memory_bytes", runner->memory().used_bytes},
          {"memory", runner->memory_report()},
          {"cuda_build", built_with_cuda()},
          {"libtorch_version", TORCH_VERSION},
          {"model_format", runner->impl_->aoti ? "aoti_package" : "torchscript"}};
#if RESPAWN_WITH_CUDA
  info["cuda_version"] =
      std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10);
#endif
  if (!runner->impl_->device_fallback.empty()) {
    info["device_fallback"] = runner->impl_->device_fallback;
  }
  if (runner->impl_->task == "generate") info["max_context"] = runner->impl_->max_context;
  spdlog::info("memory after load and warm-up: {}", info["memory"].dump());
  return runner;
}

ModelRunner::ModelRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelRunner::~ModelRunner() = default;
const nlohmann::json& ModelRunner::info() const {
  return impl_->info;
}
const std::string& ModelRunner::task() const {
  return impl_->task;
}
std::size_t ModelRunner::max_context() const {
  return impl_->max_context;
}

bool ModelRunner::batchable() const {
  return impl_->batchable;
}

Result<InferResult, WorkerError> ModelRunner::infer(const std::vector<InferInput>& requests) {
  std::vector<std::vector<const TensorMeta*>> ordered;
  for (const auto& r : requests) {
    auto o = impl_->order_inputs(*r.inputs);
    if (!o) return o.error();
    ordered.push_back(std::move(*o));
  }
  return impl_->run_guarded<InferResult>([&]() -> Result<InferResult, WorkerError> {
    const auto started = Clock::now();
    std::vector<torch::IValue> args;
    std::vector<std::int64_t> rows;
    const auto& schema = impl_->schema;
    for (std::size_t k = 0; k < ordered[0].size(); ++k) {
      const ForwardArg* schema_arg = schema && k < schema->args.size() ? &schema->args[k] : nullptr;
      auto arg = make_argument(k, requests, ordered, impl_->device, schema_arg, rows);
      if (!arg) return arg.error();
      args.push_back(std::move(*arg));
    }
    if (rows.empty()) rows.assign(requests.size(), 1);  // a model without inputs
    const auto built = Clock::now();
    const auto result = impl_->forward(std::move(args));
    impl_->synchronize();
    const auto ran = Clock::now();
    const auto outputs = forward_outputs(result);
    if (outputs.empty()) {
      return WorkerError{WorkerErrorKind::internal,
                         "forward must return a tensor, a List[str], or a tuple/list of them",
                         true};
    }
    auto split = split_outputs(outputs, rows, [&](std::size_t index, std::size_t count) {
      return impl_->output_name(index, count);
    });
    if (!split) return split.error();
    const ComputeTimes compute{nanoseconds(built - started), nanoseconds(ran - built),
                               nanoseconds(Clock::now() - ran)};
    return InferResult{std::move(*split), compute};
  });
}

WorkerError ModelRunner::launch_illegal_memory_access() {
#if RESPAWN_WITH_CUDA
  if (impl_->uses_cuda_allocator()) {
    auto outcome = impl_->run_guarded<bool>([&]() -> Result<bool, WorkerError> {
      // A tensor over device memory no allocation owns; fill_ launches a real kernel that
      // writes there, and the fault surfaces at the next synchronizing call. The device is
      // given as the target, or from_blob would ask CUDA where the pointer lives and refuse it.
      auto* nowhere = reinterpret_cast<void*>(std::uintptr_t{0x1000});
      auto bogus = at::for_blob(nowhere, {std::int64_t{1} << 20})
                       .options(torch::dtype(torch::kFloat32).device(impl_->device))
                       .target_device(impl_->device)
                       .make_tensor();
      bogus.fill_(1.0f);
      c10::cuda::device_synchronize();
      return true;
    });
    if (!outcome) return outcome.error();
    return WorkerError{WorkerErrorKind::internal, "an illegal memory access went unnoticed", true};
  }
#endif
  return bad_input("illegal_memory_access needs a worker running on cuda (this one runs on " +
                   impl_->device.str() + ")");
}

WorkerError ModelRunner::allocate_too_much() {
  auto outcome = impl_->run_guarded<bool>([&]() -> Result<bool, WorkerError> {
    const auto huge =
        torch::empty({std::int64_t{1} << 50}, torch::dtype(torch::kUInt8).device(impl_->device));
    return huge.numel() > 0;
  });
  if (!outcome) return outcome.error();
  return WorkerError{WorkerErrorKind::internal, "a 1 PiB allocation unexpectedly succeeded", true};
}

Result<std::vector<std::vector<float>>, WorkerError> ModelRunner::next_token_logits(
    const std::vector<const std::vector<std::int64_t>*>& contexts) {
  using Out = std::vector<std::vector<float>>;
  return impl_->run_guarded<Out>([&]() -> Result<Out, WorkerError> {
    std::size_t longest = 0;
    for (const auto* c : contexts) longest = std::max(longest, c->size());
    const auto rows = static_cast<std::int64_t>(contexts.size());
    auto ids = torch::zeros({rows, static_cast<std::int64_t>(longest)}, torch::kInt64);
    auto last = torch::empty({rows}, torch::kInt64);
    // Written through pointers: setting tensor elements one by one costs microseconds each.
    auto* id = ids.data_ptr<std::int64_t>();
    auto* at = last.data_ptr<std::int64_t>();
    for (std::size_t i = 0; i < contexts.size(); ++i) {
      const auto& c = *contexts[i];
      std::memcpy(id + i * longest, c.data(), c.size() * sizeof(std::int64_t));
      at[i] = static_cast<std::int64_t>(c.size()) - 1;
    }
    const auto out = impl_->forward({ids.to(impl_->device)});
    if (!out.isTensor() || out.toTensor().dim() != 3 || out.toTensor().size(0) != rows) {
      return WorkerError{WorkerErrorKind::internal,
                         "a generate model's forward must return logits [B,T,V]", true};
    }
    const auto logits = out.toTensor();
    return Impl::rows_to_host(logits.index(
        {torch::arange(rows, logits.options().dtype(torch::kInt64)), last.to(logits.device())}));
  });
}

bool ModelRunner::has_kv_cache() const {
  return impl_->kv;
}

void ModelRunner::allocate_kv_cache(std::size_t slots) {
  if (impl_->kv) impl_->allocate_kv_cache(slots);
}

Result<std::vector<float>, WorkerError> ModelRunner::prefill(const std::vector<std::int64_t>& ids,
                                                             std::size_t slot) {
  using Out = std::vector<float>;
  return impl_->run_guarded<Out>([&]() -> Result<Out, WorkerError> {
    auto input = torch::tensor(ids, torch::dtype(torch::kInt64)).view({1, -1}).to(impl_->device);
    const auto out = impl_->call(
        "prefill", {input, static_cast<std::int64_t>(slot), impl_->k_cache, impl_->v_cache});
    if (!out.isTensor() || out.toTensor().dim() != 1) {
      return WorkerError{WorkerErrorKind::internal, "the model's prefill must return logits [V]",
                         true};
    }
    return std::move(Impl::rows_to_host(out.toTensor().unsqueeze(0))[0]);
  });
}

Result<std::vector<std::vector<float>>, WorkerError> ModelRunner::decode_step(
    const std::vector<DecodeRow>& rows) {
  using Out = std::vector<std::vector<float>>;
  return impl_->run_guarded<Out>([&]() -> Result<Out, WorkerError> {
    const auto n = static_cast<std::int64_t>(rows.size());
    // Three host columns written through a pointer: setting tensor elements one by one costs
    // microseconds each, as much as a small model's whole step.
    auto columns = torch::empty({3, n}, torch::kInt64);
    auto* c = columns.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) {
      const auto& r = rows[static_cast<std::size_t>(i)];
      c[i] = r.token;
      c[n + i] = r.position;
      c[2 * n + i] = r.slot;
    }
    const auto tokens = columns[0], positions = columns[1], slots = columns[2];
    const auto& d = impl_->device;
    const auto out = impl_->call(
        "step", {tokens.to(d), positions.to(d), slots.to(d), impl_->k_cache, impl_->v_cache});
    if (!out.isTensor() || out.toTensor().dim() != 2 || out.toTensor().size(0) != n) {
      return WorkerError{WorkerErrorKind::internal, "the model's step must return logits [B,V]",
                         true};
    }
    return Impl::rows_to_host(out.toTensor());
  });
}

bool ModelRunner::built_with_cuda() {
#if RESPAWN_WITH_CUDA
  return true;
#else
  return false;
#endif
}

void ModelRunner::reset_peak_memory() {
#if RESPAWN_WITH_CUDA
  if (impl_->uses_cuda_allocator()) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(impl_->device_index());
    return;
  }
#endif
  reset_peak_rss();
}

MemorySample ModelRunner::memory() const {
#if RESPAWN_WITH_CUDA
  if (impl_->uses_cuda_allocator()) {
    const auto m = read_cuda_memory(impl_->device_index());
    return {m.allocated, m.peak_allocated};
  }
#endif
  return {rss_bytes(0), peak_rss_bytes()};
}

void ModelRunner::release_cached_memory() {
  impl_->release_cached_memory();
}

std::uint64_t ModelRunner::gpu_memory_bytes() const {
#if RESPAWN_WITH_CUDA
  if (impl_->uses_cuda_allocator()) return read_cuda_memory(impl_->device_index()).allocated;
#endif
  return 0;
}

nlohmann::json ModelRunner::memory_report() const {
  nlohmann::json report = {{"device", impl_->device.str()}};
#if RESPAWN_WITH_CUDA
  if (impl_->uses_cuda_allocator()) {
    const auto m = read_cuda_memory(impl_->device_index());
    report["allocated_bytes"] = m.allocated;
    report["reserved_bytes"] = m.reserved;
    report["peak_allocated_bytes"] = m.peak_allocated;
    report["peak_reserved_bytes"] = m.peak_reserved;
    std::size_t free = 0;
    std::size_t total = 0;
    const c10::cuda::CUDAGuard guard(impl_->device_index());
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
      report["device_free_bytes"] = free;
      report["device_total_bytes"] = total;
    } else {
      (void)cudaGetLastError();  // a failed query is no reason to fail the next kernel launch
    }
    report["rss_bytes"] = rss_bytes(0);
    return report;
  }
#endif
  report["rss_bytes"] = rss_bytes(0);
  report["peak_rss_bytes"] = peak_rss_bytes();
  return report;
}

}  // namespace respawn::worker
