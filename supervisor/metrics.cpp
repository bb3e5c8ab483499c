#include "metrics.hpp"

#include <charconv>
#include <cmath>

#include "lifecycle/recycle_reason.hpp"

namespace respawn {
namespace {

const std::vector<double> kLatencyBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,   0.5,   1,      2.5,   5,    10,    30};
const std::vector<double> kStartupBounds = {0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};
const std::vector<double> kPerTokenBounds = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.05,
                                             0.1,   0.25,   0.5,   1,    2.5};

std::string number(double v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that round-trips
  return std::string(buf, res.ptr);
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name;
  if (!labels.empty()) out += '{' + labels + '}';
  out += ' ' + number(v) + '\n';
}

// A label value as the text format needs it: backslash, double quote and newline escaped.
std::string escape_label(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// One unlabelled series: its HELP/TYPE header and its sample.
void scalar(std::string& out, const char* name, const char* type, const char* help, double v) {
  header(out, name, type, help);
  sample(out, name, "", v);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : labels + ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    sample(out, name + "_bucket", sep + "le=\"" + number(bounds_[i]) + "\"", cumulative);
  }
  sample(out, name + "_bucket", sep + "le=\"+Inf\"", count_);
  sample(out, name + "_sum", labels, sum_);
  sample(out, name + "_count", labels, count_);
}

Metrics::Metrics()
    : time_to_ready_seconds_(kStartupBounds),
      batch_size_(kBatchBounds),
      time_to_first_token_(kLatencyBounds),
      time_per_output_token_(kPerTokenBounds) {}

void Metrics::on_request(const std::string& route, int status, double seconds) {
  ++requests_[{route, status}];
  ++interval_.requests;
  if (status >= 400) ++interval_.errors;
  // Bounded: a sample of at most 100k latencies per interval.
  constexpr std::size_t kMaxSamples = 100000;
  if (collecting_ && interval_.latencies_s.size() < kMaxSamples &&
      (route == "infer" || route == "generate" || route == "generate_stream" ||
       route == "openai_completions" || route == "openai_chat")) {
    interval_.latencies_s.push_back(seconds);
  }
  request_seconds_.try_emplace(route, kLatencyBounds).first->second.observe(seconds);
}

void Metrics::on_queue_wait(const std::string& route, double seconds) {
  queue_seconds_.try_emplace(route, kLatencyBounds).first->second.observe(seconds);
}
void Metrics::on_inference(const std::string& route, double seconds) {
  inference_seconds_.try_emplace(route, kLatencyBounds).first->second.observe(seconds);
}
void Metrics::on_worker_ready(double seconds, std::int64_t pid) {
  time_to_ready_seconds_.observe(seconds);
  emit({"worker_ready", pid, {}, "ready in " + number(std::round(seconds * 1000) / 1000) + " s"});
}

IntervalStats Metrics::take_interval() {
  IntervalStats out;
  out.requests = interval_.requests;
  out.errors = interval_.errors;
  std::swap(out.latencies_s, interval_.latencies_s);
  std::swap(out.batch_sizes, interval_.batch_sizes);
  return out;
}

void Metrics::collect_intervals(bool enable) {
  collecting_ = enable;
  if (!enable) {
    interval_.latencies_s.clear();
    interval_.batch_sizes.clear();
  }
}

std::string Metrics::render() const {
  std::string out;
  header(out, "respawn_requests_total", "counter", "HTTP requests by route and status code.");
  for (const auto& [key, n] : requests_) {
    sample(out, "respawn_requests_total",
           "route=\"" + key.first + "\",code=\"" + std::to_string(key.second) + "\"", n);
  }
  header(out, "respawn_request_duration_seconds", "histogram",
         "Time from a fully read request to its response, by route.");
  for (const auto& [route, h] : request_seconds_) {
    h.render(out, "respawn_request_duration_seconds", "route=\"" + route + "\"");
  }
  header(out, "respawn_queue_wait_seconds", "histogram",
         "Time requests waited for the worker, by route.");
  for (const auto& [route, h] : queue_seconds_) {
    h.render(out, "respawn_queue_wait_seconds", "route=\"" + route + "\"");
  }
  header(out, "respawn_inference_seconds", "histogram",
         "Time the worker took per request, by route.");
  for (const auto& [route, h] : inference_seconds_) {
    h.render(out, "respawn_inference_seconds", "route=\"" + route + "\"");
  }
  header(out, "respawn_batch_size", "histogram",
         "Requests in the worker's batch that answered each request.");
  batch_size_.render(out, "respawn_batch_size", "");
  header(out, "respawn_time_to_first_token_seconds", "histogram",
         "Generations: time from a request's admission to its first token (queue included).");
  time_to_first_token_.render(out, "respawn_time_to_first_token_seconds", "");
  header(out, "respawn_time_per_output_token_seconds", "histogram",
         "Generations: time per token after the first.");
  time_per_output_token_.render(out, "respawn_time_per_output_token_seconds", "");
  scalar(out, "respawn_prompt_tokens_total", "counter", "Generations: prompt tokens processed.",
         static_cast<double>(prompt_tokens_));
  scalar(out, "respawn_generation_tokens_total", "counter", "Generations: tokens generated.",
         static_cast<double>(generation_tokens_));
  scalar(out, "respawn_queue_depth", "gauge", "Requests waiting for the worker.", queue_depth_);
  scalar(out, "respawn_requests_inflight", "gauge", "Requests the worker is running now.",
         inflight_);
  scalar(out, "respawn_ready", "gauge", "1 when a worker is ready to serve.", ready_ ? 1 : 0);
  scalar(out, "respawn_worker_starts_total", "counter", "Worker processes started.",
         worker_starts_);
  scalar(out, "respawn_worker_forks_total", "counter",
         "Workers started by the fork server (the rest started cold).", worker_forks_);
  scalar(out, "respawn_fork_server_starts_total", "counter", "Fork servers started.",
         fork_server_starts_);
  scalar(out, "respawn_fork_server_failures_total", "counter",
         "Fork servers that failed to load or ended while in use.", fork_server_failures_);
  scalar(out, "respawn_fork_server_ready", "gauge", "1 when a fork server is ready to fork.",
         fork_server_ready_ ? 1 : 0);
  scalar(out, "respawn_fork_server_resident_memory_bytes", "gauge",
         "The fork server's resident memory (shared copy-on-write with cpu workers).",
         fork_server_rss_);
  header(out, "respawn_worker_recycles_total", "counter", recycle_reasons_help().c_str());
  for (const auto& [reason, n] : recycles_) {
    sample(out, "respawn_worker_recycles_total", "reason=\"" + reason + "\"", n);
  }
  scalar(out, "respawn_requests_replayed_total", "counter",
         "Requests re-sent to a fresh worker after a worker failure.", replayed_);
  scalar(out, "respawn_requests_quarantined_total", "counter",
         "Requests quarantined as poison: present at poison_threshold worker failures, the "
         "last of which they caused alone (a crash signal, an OOM kill, an unhealthy error).",
         quarantined_);
  scalar(out, "respawn_quarantine_entries", "gauge",
         "Quarantined request fingerprints in force (GET /admin/quarantine lists them).",
         quarantine_entries_);
  scalar(out, "respawn_quarantine_refusals_total", "counter",
         "Requests refused at once because an identical one is quarantined.", quarantine_refusals_);
  scalar(out, "respawn_handler_exceptions_total", "counter",
         "Exceptions that escaped an HTTP handler (bugs), each answered 500.", handler_exceptions_);
  scalar(out, "respawn_batch_oom_retries_total", "counter",
         "Answers from a batch that ran out of memory and was retried smaller.", batch_ooms_);
  scalar(out, "respawn_requests_timed_out_total", "counter",
         "Requests answered 504 because they passed request_timeout_ms.", timed_out_);
  scalar(out, "respawn_requests_cancelled_total", "counter",
         "Requests dropped from the queue or stopped in the worker because the client left.",
         cancelled_);
  scalar(out, "respawn_breaker_opened_total", "counter", "Times the crash-loop breaker opened.",
         breaker_opened_);
  header(out, "respawn_worker_time_to_ready_seconds", "histogram",
         "Time from spawning a worker to its ready frame.");
  time_to_ready_seconds_.render(out, "respawn_worker_time_to_ready_seconds", "");
  scalar(out, "respawn_worker_rss_bytes", "gauge", "Resident memory of the current worker.",
         worker_rss_);
  scalar(out, "respawn_worker_gpu_memory_bytes", "gauge",
         "GPU memory the current worker reported after its last request (0 until the worker "
         "reports CUDA allocator stats).",
         worker_gpu_);
  render_state(out);
  render_process(out);
  return out;
}

void Metrics::render_state(std::string& out) const {
  header(out, "respawn_worker_state", "gauge",
         "1 for the current worker's state, 0 for the others (all 0 while none runs).");
  for (const auto state : kAllWorkerStates) {
    sample(out, "respawn_worker_state", "state=\"" + std::string(to_string(state)) + "\"",
           worker_state_ == state ? 1 : 0);
  }
  scalar(out, "respawn_worker_uptime_seconds", "gauge",
         "Seconds since the current worker became ready (0 while none is ready).",
         worker_uptime_s_);
  header(out, "respawn_breaker_state", "gauge",
         "1 for the crash-loop breaker's state (closed, open, half_open), 0 for the others.");
  for (const auto state : kAllBreakerStates) {
    sample(out, "respawn_breaker_state", "state=\"" + std::string(to_string(state)) + "\"",
           breaker_state_ == state ? 1 : 0);
  }
  header(out, "respawn_policy_limit", "gauge",
         "The live recycle policy's numeric knobs (units as in the knob's name; 0 = off).");
  const auto values = to_json(policy_);
  for (const auto& knob : policy_knobs()) {
    if (knob.type != KnobType::uint) continue;
    sample(out, "respawn_policy_limit", "knob=\"" + std::string(knob.name) + "\"",
           static_cast<double>(values.at(std::string(knob.name)).get<std::uint64_t>()));
  }
  header(out, "respawn_build_info", "gauge",
         "Always 1: the server's version and the libtorch its worker reported.");
  sample(out, "respawn_build_info",
         "version=\"" + escape_label(version_) + "\",libtorch=\"" + escape_label(libtorch_) + "\"",
         1);
}

void Metrics::render_process(std::string& out) const {
  if (!process_) return;
  const auto& p = *process_;
  scalar(out, "process_cpu_seconds_total", "counter",
         "Total user and system CPU time spent in seconds.", p.cpu_seconds);
  scalar(out, "process_open_fds", "gauge", "Number of open file descriptors.",
         static_cast<double>(p.open_fds));
  scalar(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
         static_cast<double>(p.max_fds));
  scalar(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
         static_cast<double>(p.virtual_bytes));
  scalar(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
         static_cast<double>(p.resident_bytes));
  scalar(out, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.", p.start_time_seconds);
}

}  // namespace respawn
