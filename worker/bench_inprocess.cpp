// respawn-bench-inprocess: the cost of one tensor `infer` inside the worker, with no supervisor,
// no HTTP and no IPC, so bench/throughput.py can subtract it from the latency seen through
// `respawn` and report what the supervisor adds.
//
//   respawn-bench-inprocess [--model models/classifier.pt] [--iterations 2000] [--batch 1]
//                           [--threads 0] [--warmup 20] [--seq-len 8] [--device cpu]
//
// It does per iteration what the worker does for an infer (worker/model_runner.cpp): the input
// tensors sit in a host blob packed like the supervisor packs them (append_tensor); each is
// wrapped with from_blob and copied (.to(device, copy=true)); forward runs under
// c10::InferenceMode; every output is brought back with .to(kCPU).contiguous() and appended to
// an output blob. Inputs come from the model's respawn.json spec: zeros of the declared dtype,
// the first -1 dim = --batch, any later -1 dim = --seq-len (classifier.pt: FP32 [1,4]).
// --threads 0 leaves libtorch's default, as the worker does with the supervisor's default
// --worker-threads 0. Prints one JSON line on stdout:
//   {"model":..., "iterations":N, "batch":B, "threads":T, "p50_us":..., "p99_us":..., ...}
#include <torch/script.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/proc_stats.hpp"
#include "respawn/tensor_codec.hpp"
#include "torch_types.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using respawn::DataType;
using respawn::TensorMeta;
using respawn::worker::forward_outputs;
using respawn::worker::from_scalar_type;
using respawn::worker::to_scalar_type;

// Zero-filled inputs as the supervisor would hand them over: metadata + one host blob.
std::vector<TensorMeta> pack_inputs(const nlohmann::json& spec, std::int64_t batch,
                                    std::int64_t seq_len, std::string& blob) {
  if (!spec.contains("inputs") || !spec["inputs"].is_array() || spec["inputs"].empty()) {
    throw std::runtime_error("the model has no respawn.json input spec to build inputs from");
  }
  std::vector<TensorMeta> metas;
  for (const auto& in : spec["inputs"]) {
    auto shape = in.value("shape", std::vector<std::int64_t>{});
    bool first = true;
    for (auto& d : shape) {
      if (d < 0) d = first ? batch : seq_len;
      first = false;
    }
    const auto type = respawn::parse_datatype(in.value("datatype", "FP32"));
    // The bench times tensor inputs only: BYTES (a List[str]) is not a tensor.
    if (!type || !to_scalar_type(*type)) {
      throw std::runtime_error("unsupported datatype in the model's spec");
    }
    const auto count = respawn::element_count(shape).value_or(0);
    const std::string zeros(count * respawn::element_size(*type), '\0');
    metas.push_back(respawn::append_tensor(blob, in.value("name", "input"), *type, shape, zeros));
  }
  return metas;
}

// One infer, step for step as ModelRunner::infer does it. Returns the output blob's size so
// the work cannot be optimized away.
std::size_t infer_once(torch::jit::Module& module, const torch::Device& device,
                       const std::vector<TensorMeta>& inputs, const std::string& blob) {
  std::vector<torch::IValue> args;
  for (const auto& in : inputs) {
    auto t = torch::from_blob(const_cast<char*>(blob.data() + in.offset), in.shape,
                              torch::dtype(*to_scalar_type(in.datatype)))
                 .to(device, /*non_blocking=*/false, /*copy=*/true);
    args.emplace_back(std::move(t));
  }
  torch::IValue result;
  {
    c10::InferenceMode guard;
    result = module.forward(std::move(args));
  }
  const auto outputs = forward_outputs(result);
  if (outputs.empty()) throw std::runtime_error("forward returned no tensor");
  std::string out;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].is_bytes()) throw std::runtime_error("the bench takes tensor outputs only");
    const auto host = outputs[i].tensor.to(torch::kCPU).contiguous();
    const auto type = from_scalar_type(host.scalar_type());
    if (!type) throw std::runtime_error("unsupported output dtype");
    const std::string_view bytes(static_cast<const char*>(host.data_ptr()), host.nbytes());
    respawn::append_tensor(out, "output__" + std::to_string(i), *type, host.sizes().vec(), bytes);
  }
  return out.size();
}

double percentile(const std::vector<double>& sorted, double p) {
  const auto index = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(index, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"respawn-bench-inprocess: time the worker's infer path in-process"};
  std::string model = "models/classifier.pt";
  std::string device_name = "cpu";
  int iterations = 2000;
  int warmup = 20;
  std::int64_t batch = 1;
  std::int64_t seq_len = 8;
  int threads = 0;
  app.add_option("--model", model, "TorchScript file with a respawn.json input spec");
  app.add_option("--iterations", iterations, "timed infers")->check(CLI::Range(1, 100000000));
  app.add_option("--warmup", warmup, "untimed infers first (after the worker's 2 warm-up passes)")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--batch", batch, "size of each input's first -1 dim")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--seq-len", seq_len, "size of any later -1 dim")->check(CLI::Range(1, 1 << 20));
  app.add_option("--threads", threads, "intra-op threads (0 = libtorch default, as the worker)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--device", device_name, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) torch::set_num_threads(threads);
    const torch::Device device =
        device_name == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    torch::jit::ExtraFilesMap extra{{"respawn.json", ""}};
    auto module = torch::jit::load(model, device, extra);
    module.eval();
    const auto spec = nlohmann::json::parse(extra["respawn.json"], nullptr, false);
    if (!spec.is_object()) throw std::runtime_error("the model has no respawn.json spec");

    std::string blob;
    const auto inputs = pack_inputs(spec, batch, seq_len, blob);
    // The worker's own warm-up (two passes; the profiling executor optimizes on the second),
    // then the extra untimed iterations.
    std::size_t sink = 0;
    for (int i = 0; i < 2 + warmup; ++i) sink += infer_once(module, device, inputs, blob);

    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(iterations));
    for (int i = 0; i < iterations; ++i) {
      const auto t0 = Clock::now();
      sink += infer_once(module, device, inputs, blob);
      if (device.is_cuda()) torch::cuda::synchronize();
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    const double mean = std::accumulate(us.begin(), us.end(), 0.0) / static_cast<double>(us.size());
    std::sort(us.begin(), us.end());
    const auto round2 = [](double v) { return std::round(v * 100) / 100; };
    nlohmann::json shapes = nlohmann::json::array();
    for (const auto& in : inputs) shapes.push_back(in.shape);
    const nlohmann::json line = {
        {"model", std::filesystem::path(model).filename().string()},
        {"iterations", iterations},
        {"batch", batch},
        {"input_shapes", shapes},
        {"threads", torch::get_num_threads()},
        {"device", device.str()},
        {"p50_us", round2(percentile(us, 0.50))},
        {"p99_us", round2(percentile(us, 0.99))},
        {"mean_us", round2(mean)},
        {"min_us", round2(us.front())},
        {"max_us", round2(us.back())},
        {"rss_bytes", respawn::rss_bytes(0)},
        {"output_bytes", sink / static_cast<std::size_t>(2 + warmup + iterations)}};
    std::cout << line.dump() << std::endl;
  } catch (const c10::Error& e) {
    std::cerr << "respawn-bench-inprocess: " << e.what_without_backtrace() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "respawn-bench-inprocess: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
