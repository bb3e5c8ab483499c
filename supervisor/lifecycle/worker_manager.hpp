#pragma once
// Owns the worker processes and the recycle policy (docs/policy.md): keeps up to max_batch_size
// jobs in flight at the current worker (which batches them), fewer when the memory budget says
// so; recycles it when the policy says so (planned: once a recycle is due it gets no new job
// and is retired when the ones in flight are answered; unplanned: SIGKILL); replays the
// requests caught in a worker failure at the head of the queue, one at a time (so a request
// that crashes workers is told apart from its batch-mates), or quarantines one once it has
// witnessed poison_threshold failures, the last caused by itself alone (quarantine.hpp);
// restarts with exponential backoff; opens the crash-loop
// breaker; and, with prestart_spare, keeps a hot spare worker loaded to take over at once.
// Holds the live Policy (PATCH /admin/policy changes it here).
// Workers come from a WorkerFactory (worker.hpp): real processes in the server, in-process
// stand-ins in the unit tests.
// Must be owned by a shared_ptr; lives on the I/O thread (not thread-safe). The io_context,
// options and Metrics must outlive it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "lifecycle/circuit_breaker.hpp"
#include "lifecycle/fork_server.hpp"
#include "lifecycle/job.hpp"
#include "lifecycle/memory_budget.hpp"
#include "lifecycle/quarantine.hpp"
#include "lifecycle/recycle_reason.hpp"
#include "lifecycle/recycle_rules.hpp"
#include "lifecycle/worker.hpp"
#include "metrics.hpp"
#include "respawn/policy.hpp"
#include "serve_options.hpp"

namespace respawn {

class WorkerManager : public std::enable_shared_from_this<WorkerManager> {
 public:
  // Its callbacks capture `this`: never copied or moved (which the deleted copy also forbids).
  WorkerManager(const WorkerManager&) = delete;
  WorkerManager& operator=(const WorkerManager&) = delete;
  struct Hooks {
    std::function<void()> idle;                     // the worker can take the next job
    std::function<void(Job)> requeue_front;         // replay this job before any other
    std::function<void(const Error&)> fail_queued;  // the breaker opened: fail fast
  };

  // Without a factory, workers are processes (worker_process_factory).
  WorkerManager(boost::asio::io_context& io, const ServeOptions& options, Policy policy,
                Metrics& metrics, WorkerFactory factory = {});

  void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }
  void start();
  // Stops every worker (the job in flight gets 503) and calls `done` once all are reaped.
  void stop(std::function<void()> done);

  // What becomes of a new request: refused with the reason (the breaker is open: 503 with
  // Retry-After; it can never fit the memory budget, even alone: 413; an identical request is
  // quarantined: counted, 502), else it may run now (can_run) or must wait for room.
  enum class Admit { now, later };
  Result<Admit> admission(const Job& job);
  // Whether `job` may go to the worker now: a ready worker with no recycle due, room under
  // max_batch_size and the memory budget, and no replay in flight (replays run alone).
  bool can_run(const Job& job) const;
  bool ready() const;  // a worker that has passed warm-up serves (readiness)
  bool busy() const { return !inflight_.empty(); }
  std::size_t in_flight() const { return inflight_.size(); }
  void run(Job job);  // only when can_run(job)
  // The job with this id passed a deadline. If it is in flight (and not answered yet), it is
  // answered `error`. The client's own deadline (kill_worker false) asks the worker to stop it,
  // as a disconnect does, and keeps its slot until the worker answers; the server's
  // (request_timeout_ms) kills the worker (reason timeout), even for a job whose client
  // deadline passed before. Returns whether the job is still at the worker.
  bool expire(std::uint64_t job_id, const Error& error, bool kill_worker);
  // The client of a job in flight left: ask the worker to stop it. Returns whether it was.
  bool cancel(std::uint64_t job_id);
  nlohmann::json quarantine_list();  // the entries, for GET /admin/quarantine
  // Removes one entry (by id) or all (empty id); returns how many went.
  std::size_t clear_quarantine(const std::string& id);
  // Entries in force now (expired ones dropped); also sets the metrics gauge.
  std::size_t quarantine_size();

  void recycle(bool now);  // operator: graceful (after the request in flight) or now (SIGKILL)
  // POST /admin/reload: reads the model file again. With the fork server on, a new fork server
  // loads it while the old one goes on forking; once it is ready it takes over and the worker
  // is recycled gracefully (reason reload), so no request fails. `done` gets the new fork
  // server's status, or why it did not load (the old one then stays, and so does the worker).
  // With the fork server off the graceful recycle alone reads the file again. One at a time.
  void reload(std::function<void(Result<nlohmann::json>)> done);
  const Policy& policy() const { return policy_; }
  void set_policy(const Policy& policy);
  void set_start_fault(std::string spec) { start_fault_ = std::move(spec); }
  const std::string& start_fault() const { return start_fault_; }

  CircuitBreaker::State breaker_state() const;
  // The current worker's pid, 0 while none is running.
  pid_t current_pid() const { return current_ ? current_->pid() : 0; }
  // The current worker's memory: resident (one /proc read) and, on cuda, the GPU memory it last
  // reported; zeros while none is running.
  struct Memory {
    std::uint64_t rss_bytes = 0;
    std::uint64_t gpu_bytes = 0;
  };
  Memory current_memory() const;
  // The current worker's state and its seconds since it became ready (0 before; for a spare
  // that took over, since it did); no state while none is running.
  struct Current {
    std::optional<WorkerState> state;
    double uptime_s = 0;
  };
  Current current_worker() const;
  std::uint64_t workers_started() const { return starts_; }
  std::optional<RecycleReason> last_recycle_reason() const { return last_recycle_reason_; }
  // For /admin/workers: the current worker, the spare and the retiring ones (each reads /proc),
  // the breaker, the memory budget.
  nlohmann::json status() const;
  const nlohmann::json& model_info() const { return model_info_; }  // the last ready frame
  const std::shared_ptr<ForkServer>& fork_server() const { return fork_server_; }

 private:
  void housekeep();
  std::vector<std::string> worker_args() const;
  std::shared_ptr<Worker> spawn_worker();
  // The fork server (fork_server.hpp): started at start() and when the knob is switched on,
  // restarted with backoff when it dies (workers start cold meanwhile), replaced by reload().
  // Only for process workers (no factory given): unit tests' stand-ins need none.
  bool fork_server_wanted() const { return policy_.fork_server && process_workers_; }
  void start_fork_server(bool for_reload);
  void on_fork_server_ready(ForkServer& server);
  void on_fork_server_exited(ForkServer& server);
  // A worker forked just before its fork server died (or was killed for not answering) is our
  // child (CLONE_PARENT) whose pid we never learned: it is killed and reaped here, or it would
  // stay a zombie. Run when a fork server has ended, and then once a second while one is dying.
  void reap_strays();
  void finish_reload(Result<nlohmann::json> result);
  void recycle_for(RecycleReason reason, bool now);
  void start_current();
  void schedule_start();
  void maybe_prestart_spare();
  void fork_successor();
  void promote_spare();
  void retire_current(RecycleReason reason);
  // Non-empty while the breaker is open: why new requests are refused, with Retry-After.
  std::optional<Error> refusal() const;
  // After an answer or at an idle moment: notes a planned recycle that became due (the worker
  // then gets no new job) and retires the worker once nothing is in flight; else tells the
  // scheduler there is room. Memory limits apply only right after a request (as the policy
  // defines them): a fresh worker whose baseline is above the limit would otherwise be recycled
  // forever without serving.
  void check_worker(bool after_request = false);
  void configure(Worker& worker);
  void learn_memory(const nlohmann::json& result);
  struct InFlight {
    Job job;
    std::chrono::steady_clock::time_point started;
    bool answered = false;  // its client deadline passed: the worker's answer goes nowhere
    std::optional<std::chrono::steady_clock::time_point> first_token;  // generate only
    Worker* worker = nullptr;  // the one running it: the current, or one retiring since
  };
  // Jobs in flight on `worker`.
  std::size_t inflight_on(const Worker& worker) const;
  // Jobs caught in `worker`'s exit: put back, replayed or failed, by `reason`.
  void handle_caught_jobs(Worker& worker, RecycleReason reason);
  // The metrics of a request the worker answered with a result: its batch's size and, for a
  // generation, its tokens, time to first token and time per output token.
  void count_result(const InFlight& flight, const nlohmann::json& result);
  std::map<std::uint64_t, InFlight>::iterator find_job(std::uint64_t job_id);
  std::uint64_t inflight_weight() const;
  void on_ready(Worker& worker);
  void on_answer(Worker& worker, ipc::Frame frame);
  void on_token(Worker& worker, std::uint64_t request_id, std::string_view text,
                const nlohmann::json& logprobs);
  void on_exited(Worker& worker);
  void on_current_failed(RecycleReason reason, bool reached_ready, pid_t pid = 0);
  // `evidence`: why this failure was the job's own doing (it ran alone and the worker died of
  // it); only then may it be quarantined.
  void handle_failed_job(Job job, RecycleReason reason, const Error& if_not_replayed,
                         const std::optional<std::string>& evidence);
  void count_recycle(RecycleReason reason, pid_t pid);  // pid: the worker recycled (0: none)
  WorkerUsage usage(const Worker& worker, bool with_memory) const;
  void finish_stop_if_done();

  boost::asio::io_context& io_;
  const ServeOptions& options_;
  Policy policy_;
  Metrics& metrics_;
  const bool process_workers_;  // workers are processes (no factory was given)
  WorkerFactory factory_;
  Hooks hooks_;
  CircuitBreaker breaker_;
  boost::asio::steady_timer start_timer_;
  boost::asio::steady_timer housekeeping_timer_;
  std::shared_ptr<ForkServer> fork_server_;
  std::shared_ptr<ForkServer> next_fork_server_;  // loading the model again for a reload
  std::function<void(Result<nlohmann::json>)> reload_done_;
  boost::asio::steady_timer fork_server_timer_;
  unsigned fork_server_failures_ = 0;  // consecutive fork servers that ended
  bool strays_dying_ = false;          // reap_strays() killed one: reap it next time
  bool started_ = false;               // start() was called
  bool first_start_pending_ = false;   // the first worker waits for the fork server
  std::shared_ptr<Worker> current_;
  std::shared_ptr<Worker> spare_;
  std::list<std::shared_ptr<Worker>> retiring_;
  std::map<std::uint64_t, InFlight> inflight_;  // by IPC request id, i.e. in sending order
  std::uint64_t next_request_id_ = 1;
  MemoryBudget budget_;
  bool cuda_ = false;  // the workers run on a GPU: results carry gpu_memory_bytes
  nlohmann::json model_info_;
  std::optional<RecycleReason> last_recycle_reason_;
  std::optional<RecycleReason> pending_recycle_;  // due (operator or planned): no new jobs
  std::string start_fault_;
  std::uint64_t starts_ = 0;
  unsigned failed_starts_ = 0;  // consecutive workers that exited before ready
  bool stopping_ = false;
  std::function<void()> on_stopped_;
  std::mt19937_64 rng_{std::random_device{}()};
  Quarantine quarantine_;
};

}  // namespace respawn
