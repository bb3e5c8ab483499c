#include "model_runner.hpp"

#include <torch/script.h>
#include <torch/torch.h>

#include <spdlog/spdlog.h>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "error_classifier.hpp"
#include "respawn/proc_stats.hpp"

namespace respawn::worker {
namespace {

using Clock = std::chrono::steady_clock;

torch::ScalarType to_scalar_type(DataType type) {
  switch (type) {
    case DataType::BOOL:
      return torch::kBool;
    case DataType::UINT8:
      return torch::kUInt8;
    case DataType::INT8:
      return torch::kInt8;
    case DataType::INT16:
      return torch::kInt16;
    case DataType::INT32:
      return torch::kInt32;
    case DataType::INT64:
      return torch::kInt64;
    case DataType::FP32:
      return torch::kFloat32;
    case DataType::FP64:
      return torch::kFloat64;
  }
  return torch::kFloat32;
}

std::optional<DataType> from_scalar_type(torch::ScalarType type) {
  for (auto t : {DataType::BOOL, DataType::UINT8, DataType::INT8, DataType::INT16, DataType::INT32,
                 DataType::INT64, DataType::FP32, DataType::FP64}) {
    if (to_scalar_type(t) == type) return t;
  }
  return std::nullopt;
}

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
  } catch (const c10::Error& e) {
    return classify_failure(ExceptionFamily::torch_other, e.what());
  } catch (const std::exception& e) {
    return classify_failure(ExceptionFamily::other, e.what());
  }
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

}  // namespace

struct ModelRunner::Impl {
  torch::jit::Module module;
  torch::Device device{torch::kCPU};
  nlohmann::json spec = nlohmann::json::object();
  nlohmann::json info;
  std::string task;
  std::size_t max_context = 1024;

  // Orders the request's inputs as forward() takes them, validating against the spec if the
  // model declares one.
  Result<std::vector<const TensorMeta*>, WorkerError> order_inputs(
      const std::vector<TensorMeta>& inputs) const {
    std::vector<const TensorMeta*> ordered;
    if (!spec.contains("inputs")) {
      for (const auto& in : inputs) ordered.push_back(&in);
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

  std::string output_name(std::size_t index, std::size_t count) const {
    if (spec.contains("outputs") && spec["outputs"].size() == count) {
      return spec["outputs"][index].value("name", "output__" + std::to_string(index));
    }
    return "output__" + std::to_string(index);
  }

  Result<TensorOutputs, WorkerError> collect_outputs(const torch::IValue& result) const {
    std::vector<torch::Tensor> tensors;
    if (result.isTensor()) {
      tensors.push_back(result.toTensor());
    } else if (result.isTuple()) {
      for (const auto& v : result.toTupleRef().elements()) {
        if (!v.isTensor()) break;
        tensors.push_back(v.toTensor());
      }
    } else if (result.isTensorList()) {
      for (const auto& t : result.toTensorVector()) tensors.push_back(t);
    }
    if (tensors.empty()) {
      return WorkerError{WorkerErrorKind::internal,
                         "forward must return a tensor or a tuple/list of tensors", true};
    }
    TensorOutputs out;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto host = tensors[i].to(torch::kCPU).contiguous();
      const auto type = from_scalar_type(host.scalar_type());
      if (!type) {
        return WorkerError{
            WorkerErrorKind::internal,
            "unsupported output dtype " + std::string(c10::toString(host.scalar_type())), true};
      }
      const std::string_view bytes(static_cast<const char*>(host.data_ptr()), host.nbytes());
      out.tensors.push_back(append_tensor(out.blob, output_name(i, tensors.size()), *type,
                                          host.sizes().vec(), bytes));
    }
    return out;
  }

  torch::IValue forward(std::vector<torch::IValue> inputs) {
    c10::InferenceMode guard;
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
        inputs.emplace_back(torch::zeros(shape, torch::dtype(to_scalar_type(type)).device(device)));
      }
    } else {
      spdlog::info("no input spec in the model; skipping the warm-up forward");
      return;
    }
    for (int i = 0; i < 2; ++i) forward(inputs);
  }
};

namespace {

torch::jit::Module load_module(const LoadOptions& options, torch::Device& device,
                               torch::jit::ExtraFilesMap& extra) {
  const bool cuda = torch::cuda::is_available();
  if (options.device == "cuda" && !cuda) throw std::runtime_error("--device cuda: no CUDA device");
  if (options.device != "cpu" && cuda) {
    try {
      device = torch::Device(torch::kCUDA, 0);
      return torch::jit::load(options.model_path, device, extra);
    } catch (const c10::Error& e) {
      if (options.device == "cuda") throw;
      spdlog::warn("loading on cuda failed, falling back to cpu: {}",
                   classify_failure(ExceptionFamily::torch_other, e.what()).message);
    }
  } else if (options.device == "auto") {
    spdlog::info("no CUDA device available; using cpu");
  }
  device = torch::Device(torch::kCPU);
  return torch::jit::load(options.model_path, device, extra);
}

}  // namespace

std::unique_ptr<ModelRunner> ModelRunner::load(const LoadOptions& options) {
  const auto started = Clock::now();
  if (options.threads > 0) torch::set_num_threads(options.threads);
  auto impl = std::make_unique<Impl>();
  torch::jit::ExtraFilesMap extra{{"respawn.json", ""}};
  try {
    impl->module = load_module(options, impl->device, extra);
    impl->module.eval();
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load model " + options.model_path + ": " +
                             classify_failure(ExceptionFamily::torch_other, e.what()).message);
  }
  if (!extra["respawn.json"].empty()) {
    impl->spec = nlohmann::json::parse(extra["respawn.json"], nullptr, false);
    if (!impl->spec.is_object()) throw std::runtime_error("respawn.json in the model is not JSON");
  }
  impl->task = options.task.empty() ? impl->spec.value("task", "tensor") : options.task;
  if (impl->task != "generate" && impl->task != "tensor") {
    throw std::runtime_error("unknown task '" + impl->task + "'");
  }
  impl->max_context = impl->spec.value("max_context", std::size_t{1024});
  const auto loaded = Clock::now();
  try {
    impl->warm_up();
  } catch (const std::exception& e) {
    throw std::runtime_error("warm-up forward failed: " +
                             classify_failure(ExceptionFamily::other, e.what()).message);
  }
  const auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  impl->info = {{"task", impl->task},
                {"device", impl->device.str()},
                {"inputs", impl->spec.value("inputs", nlohmann::json::array())},
                {"outputs", impl->spec.value("outputs", nlohmann::json::array())},
                {"load_ms", ms(loaded - started)},
                {"warmup_ms", ms(Clock::now() - loaded)},
                {"rss_bytes", rss_bytes(0)},
                {"torch_version", TORCH_VERSION}};
  if (impl->task == "generate") impl->info["max_context"] = impl->max_context;
  return std::unique_ptr<ModelRunner>(new ModelRunner(std::move(impl)));
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

Result<TensorOutputs, WorkerError> ModelRunner::infer(const std::vector<TensorMeta>& inputs,
                                                      std::string_view blob) {
  auto ordered = impl_->order_inputs(inputs);
  if (!ordered) return ordered.error();
  return guarded<TensorOutputs>([&]() -> Result<TensorOutputs, WorkerError> {
    std::vector<torch::IValue> args;
    for (const TensorMeta* in : *ordered) {
      // from_blob does not copy; clone() so the tensor owns memory that outlives `blob`.
      auto t = torch::from_blob(const_cast<char*>(blob.data() + in->offset), in->shape,
                                torch::dtype(to_scalar_type(in->datatype)))
                   .to(impl_->device, /*non_blocking=*/false, /*copy=*/true);
      args.emplace_back(std::move(t));
    }
    return impl_->collect_outputs(impl_->forward(std::move(args)));
  });
}

WorkerError ModelRunner::allocate_too_much() {
  auto outcome = guarded<bool>([&]() -> Result<bool, WorkerError> {
    const auto huge =
        torch::empty({std::int64_t{1} << 50}, torch::dtype(torch::kUInt8).device(impl_->device));
    return huge.numel() > 0;
  });
  if (!outcome) return outcome.error();
  return WorkerError{WorkerErrorKind::internal, "a 1 PiB allocation unexpectedly succeeded", true};
}

Result<std::vector<float>, WorkerError> ModelRunner::next_token_logits(
    const std::vector<std::int64_t>& ids) {
  return guarded<std::vector<float>>([&]() -> Result<std::vector<float>, WorkerError> {
    auto input = torch::tensor(ids, torch::dtype(torch::kInt64)).view({1, -1}).to(impl_->device);
    const auto out = impl_->forward({input});
    if (!out.isTensor() || out.toTensor().dim() != 3) {
      return WorkerError{WorkerErrorKind::internal,
                         "a generate model's forward must return logits [B,T,V]", true};
    }
    const auto last = out.toTensor()[0][-1].to(torch::kCPU, torch::kFloat32).contiguous();
    const float* p = last.data_ptr<float>();
    return std::vector<float>(p, p + last.numel());
  });
}

}  // namespace respawn::worker
