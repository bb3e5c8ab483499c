#pragma once
// The supervisor's Prometheus metrics, rendered in the text exposition format. Names are
// prefixed respawn_ (but for the standard process_* ones of the supervisor process itself),
// counters end in _total and durations are in seconds. Label values come from closed sets
// (routes, states, reasons, knobs), so the series stay bounded. Pure: what is read from the
// server or /proc is set by the caller (Api::metrics() at scrape time). Not thread-safe:
// updated and read on the I/O thread only.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lifecycle/circuit_breaker.hpp"
#include "lifecycle/worker.hpp"
#include "respawn/policy.hpp"
#include "respawn/proc_stats.hpp"

namespace respawn {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends the _bucket/_sum/_count series; `labels` is like `route="infer"` or empty.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// A lifecycle event as the status page's timeline shows it (GET /admin/events): kind is
// worker_started, worker_ready, recycle, replay, quarantine or breaker; pid 0 when unknown.
struct LifecycleEvent {
  std::string kind;
  std::int64_t pid = 0;
  std::string reason;
  std::string detail;
};

// What happened since the last take_interval(): for the status page's once-a-second stats.
struct IntervalStats {
  std::uint64_t requests = 0;       // all requests answered, ever
  std::uint64_t errors = 0;         // of those, answered 4xx or 5xx, ever
  std::vector<double> latencies_s;  // infer/generate requests answered in the interval
  std::map<std::uint64_t, std::uint64_t> batch_sizes;  // batches run in the interval, by size
};

class Metrics {
 public:
  Metrics();

  // Called with each lifecycle event, on the I/O thread; one listener (null: none).
  void set_event_listener(std::function<void(const LifecycleEvent&)> listener) {
    listener_ = std::move(listener);
  }
  // The interval's figures (then starts a new interval). Collected only while `enable` was
  // last set, so that nobody watching costs nothing.
  IntervalStats take_interval();
  void collect_intervals(bool enable);

  void on_request(const std::string& route, int status, double seconds);
  // `route` is the label of the HTTP route the job came by (Route::label(): infer, generate,
  // generate_stream, openai_completions, openai_chat), so a bounded set.
  void on_queue_wait(const std::string& route, double seconds);
  void on_inference(const std::string& route, double seconds);
  void on_worker_start(bool forked, std::int64_t pid = 0) {
    ++worker_starts_;
    if (forked) ++worker_forks_;
    emit({"worker_started", pid, forked ? "forked" : "spawned", {}});
  }
  void on_fork_server_start() { ++fork_server_starts_; }
  void on_fork_server_failure() { ++fork_server_failures_; }
  // The fork server's resident memory, and whether one is ready to fork (at scrape time).
  void set_fork_server(bool ready, std::uint64_t rss) {
    fork_server_ready_ = ready;
    fork_server_rss_ = rss;
  }
  void on_recycle(const std::string& reason, std::int64_t pid = 0) {
    ++recycles_[reason];
    emit({"recycle", pid, reason, {}});
  }
  void on_replayed(std::string detail = {}) {
    ++replayed_;
    emit({"replay", 0, {}, std::move(detail)});
  }
  void on_quarantined(std::string detail = {}) {
    ++quarantined_;
    emit({"quarantine", 0, {}, std::move(detail)});
  }
  void on_batch_oom() { ++batch_ooms_; }
  void on_timed_out() { ++timed_out_; }
  void on_cancelled() { ++cancelled_; }
  void on_breaker_open(std::string detail = {}) {
    ++breaker_opened_;
    emit({"breaker", 0, "open", std::move(detail)});
  }
  void on_handler_exception() { ++handler_exceptions_; }
  void on_quarantine_refusal() { ++quarantine_refusals_; }
  void set_quarantine_entries(std::size_t n) { quarantine_entries_ = n; }
  void on_worker_ready(double seconds_since_spawn, std::int64_t pid = 0);
  void on_batch(std::uint64_t size) {
    batch_size_.observe(static_cast<double>(size));
    if (collecting_) ++interval_.batch_sizes[size];
  }
  void on_tokens(std::uint64_t prompt, std::uint64_t generated) {
    prompt_tokens_ += prompt;
    generation_tokens_ += generated;
  }
  void on_first_token(double seconds) { time_to_first_token_.observe(seconds); }
  void on_time_per_output_token(double seconds) { time_per_output_token_.observe(seconds); }
  void set_queue_depth(std::size_t n) { queue_depth_ = n; }
  void set_inflight(std::size_t n) { inflight_ = n; }
  std::size_t queue_depth() const { return queue_depth_; }
  std::size_t inflight() const { return inflight_; }
  void set_worker_rss(std::uint64_t bytes) { worker_rss_ = bytes; }
  void set_worker_gpu(std::uint64_t bytes) { worker_gpu_ = bytes; }
  void set_ready(bool ready) { ready_ = ready; }
  // Set at scrape time: the current worker's state and the seconds since it became ready (0
  // before); no state while no worker runs.
  void set_worker_state(std::optional<WorkerState> state, double uptime_s) {
    worker_state_ = state;
    worker_uptime_s_ = uptime_s;
  }
  void set_breaker_state(CircuitBreaker::State state) { breaker_state_ = state; }
  void set_policy(const Policy& policy) { policy_ = policy; }  // the live one
  // The server's version and the libtorch the worker reported ("unknown" until one did).
  void set_build_info(std::string version, std::string libtorch) {
    version_ = std::move(version);
    libtorch_ = std::move(libtorch);
  }
  // The supervisor process's own figures (process_*), rendered once set.
  void set_process(const ProcessStats& stats) { process_ = stats; }

  std::string render() const;

 private:
  void emit(const LifecycleEvent& event) {
    if (listener_) listener_(event);
  }
  void render_state(std::string& out) const;
  void render_process(std::string& out) const;

  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Histogram> request_seconds_;
  std::map<std::string, std::uint64_t> recycles_;
  std::uint64_t replayed_ = 0;
  std::uint64_t quarantined_ = 0;
  std::uint64_t batch_ooms_ = 0;
  std::uint64_t timed_out_ = 0;
  std::uint64_t cancelled_ = 0;
  std::uint64_t breaker_opened_ = 0;
  std::uint64_t handler_exceptions_ = 0;
  std::uint64_t quarantine_refusals_ = 0;
  std::size_t quarantine_entries_ = 0;
  std::uint64_t worker_gpu_ = 0;
  std::map<std::string, Histogram> queue_seconds_;      // by route
  std::map<std::string, Histogram> inference_seconds_;  // by route
  Histogram time_to_ready_seconds_;
  Histogram batch_size_;
  Histogram time_to_first_token_;
  Histogram time_per_output_token_;
  std::uint64_t prompt_tokens_ = 0;
  std::uint64_t generation_tokens_ = 0;
  std::uint64_t worker_starts_ = 0;
  std::uint64_t worker_forks_ = 0;
  std::uint64_t fork_server_starts_ = 0;
  std::uint64_t fork_server_failures_ = 0;
  bool fork_server_ready_ = false;
  std::uint64_t fork_server_rss_ = 0;
  std::size_t queue_depth_ = 0;
  std::size_t inflight_ = 0;
  std::uint64_t worker_rss_ = 0;
  bool ready_ = false;
  std::optional<WorkerState> worker_state_;
  double worker_uptime_s_ = 0;
  CircuitBreaker::State breaker_state_ = CircuitBreaker::State::closed;
  Policy policy_;
  std::string version_ = "unknown";
  std::string libtorch_ = "unknown";
  std::optional<ProcessStats> process_;
  std::function<void(const LifecycleEvent&)> listener_;
  bool collecting_ = false;
  IntervalStats interval_;
};

}  // namespace respawn
