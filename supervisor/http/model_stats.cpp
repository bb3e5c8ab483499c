#include "http/model_stats.hpp"

#include "respawn/json_util.hpp"

namespace respawn {

std::optional<ModelStats::Compute> ModelStats::compute_from(const nlohmann::json& worker_meta) {
  const auto& ns = json_field(worker_meta, "compute_ns");
  if (!ns.is_object()) return std::nullopt;
  return Compute{json_get<std::uint64_t>(ns, "input", 0), json_get<std::uint64_t>(ns, "infer", 0),
                 json_get<std::uint64_t>(ns, "output", 0)};
}

void ModelStats::on_success(std::chrono::nanoseconds total,
                            std::optional<std::chrono::nanoseconds> queue,
                            std::optional<Compute> compute, std::size_t batch_size) {
  success_.add(static_cast<std::uint64_t>(total.count()));
  if (queue) queue_.add(static_cast<std::uint64_t>(queue->count()));
  ++inferences_;
  last_inference_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  if (!compute) return;
  compute_input_.add(compute->input_ns);
  compute_infer_.add(compute->infer_ns);
  compute_output_.add(compute->output_ns);
  auto& batch = batches_[std::max<std::size_t>(batch_size, 1)];
  ++batch.answers;
  batch.input_ns += compute->input_ns;
  batch.infer_ns += compute->infer_ns;
  batch.output_ns += compute->output_ns;
}

void ModelStats::on_failure(std::chrono::nanoseconds total) {
  fail_.add(static_cast<std::uint64_t>(total.count()));
}

nlohmann::json ModelStats::to_json(const std::string& name, const std::string& version) const {
  const Duration none;
  nlohmann::json batch_stats = nlohmann::json::array();
  std::uint64_t executions = 0;
  for (const auto& [batch_size, b] : batches_) {
    const std::size_t size = batch_size;  // a lambda cannot capture a structured binding (C++17)
    // Every answer of a batch carries the batch's times: one execution per `size` answers.
    const auto count = (b.answers + size / 2) / size;
    executions += count;
    const auto stat = [&](std::uint64_t ns) {
      return nlohmann::json{{"count", count}, {"ns", ns / size}};
    };
    batch_stats.push_back({{"batch_size", size},
                           {"compute_input", stat(b.input_ns)},
                           {"compute_infer", stat(b.infer_ns)},
                           {"compute_output", stat(b.output_ns)}});
  }
  // Answers without the worker's times (generate) are one execution each.
  executions += inferences_ - compute_infer_.count;
  return {{"name", name},
          {"version", version},
          {"last_inference", last_inference_ms_},
          {"inference_count", inferences_},
          {"execution_count", executions},
          {"inference_stats",
           {{"success", success_.to_json()},
            {"fail", fail_.to_json()},
            {"queue", queue_.to_json()},
            {"compute_input", compute_input_.to_json()},
            {"compute_infer", compute_infer_.to_json()},
            {"compute_output", compute_output_.to_json()},
            {"cache_hit", none.to_json()},
            {"cache_miss", none.to_json()}}},
          {"response_stats", nlohmann::json::object()},
          {"batch_stats", std::move(batch_stats)},
          {"memory_usage", nlohmann::json::array()}};
}

}  // namespace respawn
