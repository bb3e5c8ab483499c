#pragma once
// The supervisor's Prometheus metrics, rendered in the text exposition format. Names are
// prefixed respawn_, counters end in _total and durations are in seconds. Not thread-safe:
// updated and read on the I/O thread only.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

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

class Metrics {
 public:
  Metrics();

  void on_request(const std::string& route, int status, double seconds);
  void on_queue_wait(double seconds);
  void on_inference(double seconds);
  void on_worker_start(bool forked) {
    ++worker_starts_;
    if (forked) ++worker_forks_;
  }
  void on_fork_server_start() { ++fork_server_starts_; }
  void on_fork_server_failure() { ++fork_server_failures_; }
  // The fork server's resident memory, and whether one is ready to fork (at scrape time).
  void set_fork_server(bool ready, std::uint64_t rss) {
    fork_server_ready_ = ready;
    fork_server_rss_ = rss;
  }
  void on_recycle(const std::string& reason) { ++recycles_[reason]; }
  void on_replayed() { ++replayed_; }
  void on_quarantined() { ++quarantined_; }
  void on_batch_oom() { ++batch_ooms_; }
  void on_timed_out() { ++timed_out_; }
  void on_cancelled() { ++cancelled_; }
  void on_breaker_open() { ++breaker_opened_; }
  void on_handler_exception() { ++handler_exceptions_; }
  void on_quarantine_refusal() { ++quarantine_refusals_; }
  void set_quarantine_entries(std::size_t n) { quarantine_entries_ = n; }
  void on_worker_ready(double seconds_since_spawn);
  void on_batch(std::uint64_t size) { batch_size_.observe(static_cast<double>(size)); }
  void on_tokens(std::uint64_t prompt, std::uint64_t generated) {
    prompt_tokens_ += prompt;
    generation_tokens_ += generated;
  }
  void on_first_token(double seconds) { time_to_first_token_.observe(seconds); }
  void on_time_per_output_token(double seconds) { time_per_output_token_.observe(seconds); }
  void set_queue_depth(std::size_t n) { queue_depth_ = n; }
  void set_inflight(std::size_t n) { inflight_ = n; }
  void set_worker_rss(std::uint64_t bytes) { worker_rss_ = bytes; }
  void set_worker_gpu(std::uint64_t bytes) { worker_gpu_ = bytes; }
  void set_ready(bool ready) { ready_ = ready; }

  std::string render() const;

 private:
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
  Histogram queue_seconds_;
  Histogram inference_seconds_;
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
};

}  // namespace respawn
