#pragma once
// Owns the worker processes and the recycle policy (docs/policy.md): runs one job at a time
// on the current worker; recycles it when the policy says so (planned: after its request
// finishes; unplanned: SIGKILL); replays a request caught in a worker failure at the head of
// the queue, or quarantines it once it has witnessed poison_threshold failures; restarts with
// exponential backoff; opens the crash-loop breaker; and, with prestart_spare, keeps a hot spare
// worker loaded to take over at once. Holds the live Policy (PATCH /admin/policy changes it here).
// Must be owned by a shared_ptr; lives on the I/O thread (not thread-safe). The io_context,
// options and Metrics must outlive it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "circuit_breaker.hpp"
#include "job.hpp"
#include "metrics.hpp"
#include "recycle_rules.hpp"
#include "respawn/policy.hpp"
#include "serve_options.hpp"
#include "worker.hpp"

namespace respawn {

class WorkerManager : public std::enable_shared_from_this<WorkerManager> {
 public:
  struct Hooks {
    std::function<void()> idle;                     // the worker can take the next job
    std::function<void(Job)> requeue_front;         // replay this job before any other
    std::function<void(const Error&)> fail_queued;  // the breaker opened: fail fast
  };

  WorkerManager(boost::asio::io_context& io, const ServeOptions& options, Policy policy,
                Metrics& metrics);

  void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }
  void start();
  // Stops every worker (the job in flight gets 503) and calls `done` once all are reaped.
  void stop(std::function<void()> done);

  bool idle() const;   // a ready worker and nothing in flight
  bool ready() const;  // a worker that has passed warm-up serves (readiness)
  bool busy() const { return inflight_.has_value(); }
  void run(Job job);  // only while idle()
  // The job with this id passed its deadline: if it is in flight, answer 504 and kill the
  // worker (reason timeout). Returns whether it was in flight.
  bool expire(std::uint64_t job_id, const Error& error);
  // The client of the job in flight left: ask the worker to stop it. Returns whether it was.
  bool cancel(std::uint64_t job_id);
  // Non-empty while the breaker is open: why new requests are refused, with Retry-After.
  std::optional<Error> refusal() const;
  // Whether an identical request was quarantined before (it would crash workers again).
  bool is_poison(const Job& job) const;

  void recycle(bool now);  // operator: graceful (after the request in flight) or now (SIGKILL)
  const Policy& policy() const { return policy_; }
  void set_policy(const Policy& policy);
  void set_start_fault(std::string spec) { start_fault_ = std::move(spec); }
  const std::string& start_fault() const { return start_fault_; }

  nlohmann::json status() const;
  const nlohmann::json& model_info() const { return model_info_; }  // the last ready frame

 private:
  void housekeep();
  std::shared_ptr<Worker> spawn_worker();
  void start_current();
  void schedule_start();
  void maybe_prestart_spare();
  void promote_spare();
  void retire_current(std::string_view reason);
  // At an idle moment: a planned recycle if one is due, else tell the scheduler. Memory
  // limits apply only right after a request (as the policy defines them): a fresh worker whose
  // baseline is above the limit would otherwise be recycled forever without serving.
  void check_idle_worker(bool after_request = false);
  void on_ready(Worker& worker);
  void on_answer(Worker& worker, ipc::Frame frame);
  void on_text(Worker& worker, std::string_view text);
  void on_exited(Worker& worker);
  void on_current_failed(const std::string& reason, bool reached_ready);
  void handle_failed_job(Job job, const std::string& reason, const Error& if_not_replayed);
  void count_recycle(std::string_view reason);
  WorkerUsage usage(const Worker& worker, bool with_memory) const;
  void finish_stop_if_done();

  boost::asio::io_context& io_;
  const ServeOptions& options_;
  Policy policy_;
  Metrics& metrics_;
  Hooks hooks_;
  CircuitBreaker breaker_;
  boost::asio::steady_timer start_timer_;
  boost::asio::steady_timer housekeeping_timer_;
  std::shared_ptr<Worker> current_;
  std::shared_ptr<Worker> spare_;
  std::list<std::shared_ptr<Worker>> retiring_;
  std::optional<Job> inflight_;
  std::uint64_t next_request_id_ = 1;
  std::chrono::steady_clock::time_point job_started_{};
  nlohmann::json model_info_;
  std::string last_recycle_reason_;
  std::optional<std::string> pending_recycle_;  // operator asked while busy
  std::string start_fault_;
  std::uint64_t starts_ = 0;
  unsigned failed_starts_ = 0;  // consecutive workers that exited before ready
  bool stopping_ = false;
  std::function<void()> on_stopped_;
  std::mt19937_64 rng_{std::random_device{}()};
  // Fingerprints of quarantined requests, oldest first; bounded.
  std::deque<std::size_t> poison_order_;
  std::unordered_set<std::size_t> poison_;
};

}  // namespace respawn
