#include "lifecycle/worker_manager.hpp"

#include <sys/wait.h>
#include <unistd.h>
#include <cassert>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>

#include "lifecycle/worker_process.hpp"
#include "respawn/json_util.hpp"
#include "respawn/worker_error.hpp"

namespace respawn {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The memory budget's fixed per-batch term (memory_budget.hpp): a few RSS steps of glibc's
// malloc, or the CUDA allocator's 2 MiB blocks.
constexpr std::uint64_t kBudgetSlackBytes = 4u << 20;

// What a worker's ready frame says it holds after loading: its device memory (cuda) or RSS.
std::uint64_t memory_after_load(const nlohmann::json& ready) {
  return json_get<std::uint64_t>(ready, "memory_bytes",
                                 json_get<std::uint64_t>(ready, "rss_bytes", 0));
}

RecycleReason unhealthy_reason(WorkerErrorKind kind) {
  if (kind == WorkerErrorKind::oom) return RecycleReason::oom;
  if (kind == WorkerErrorKind::cuda_error) return RecycleReason::cuda_error;
  return RecycleReason::crash;
}

}  // namespace

WorkerManager::WorkerManager(asio::io_context& io, const ServeOptions& options, Policy policy,
                             Metrics& metrics, WorkerFactory factory)
    : io_(io),
      options_(options),
      metrics_(metrics),
      process_workers_(!factory),
      factory_(factory ? std::move(factory) : worker_process_factory(io)),
      start_timer_(io),
      housekeeping_timer_(io),
      fork_server_timer_(io) {
  set_policy(policy);
}

void WorkerManager::set_policy(const Policy& policy) {
  policy_ = policy;
  if (started_ && !stopping_) {
    if (fork_server_wanted() && !fork_server_ && !next_fork_server_) start_fork_server(false);
    if (!fork_server_wanted() && fork_server_) {
      spdlog::info("fork_server switched off: workers start cold");
      fork_server_.reset();  // killed and reaped; the workers it forked go on
      if (std::exchange(first_start_pending_, false)) start_current();
    }
  }
  quarantine_.set_ttl(std::chrono::seconds(policy.quarantine_ttl_s));
  breaker_.set_limits({policy.crash_loop_failures, std::chrono::seconds(policy.crash_loop_window_s),
                       std::chrono::seconds(policy.crash_loop_cooldown_s)});
  if (current_) current_->request_limit = draw_request_limit(policy_, rng_());
  for (auto* w : {&current_, &spare_}) {
    if (*w) configure(**w);
  }
  check_worker();  // a lower limit may already be reached
}

// The batching and memory settings the worker needs; sent at spawn and on every policy change.
// The budget is GPU memory on a cuda worker, else host RSS.
void WorkerManager::configure(Worker& worker) {
  cuda_ = json_get<std::string>(model_info_, "device", "").rfind("cuda", 0) == 0;
  const std::uint64_t mb = cuda_ ? policy_.max_gpu_memory_mb : policy_.max_worker_rss_mb;
  // A tensor request costs at least its input bytes (the worker copies them into a tensor).
  const bool tensor = json_get<std::string>(model_info_, "task", "") == "tensor";
  budget_.configure(mb * 1024 * 1024, tensor ? 1.0 : 0.0, kBudgetSlackBytes);
  worker.configure({{"max_batch_size", policy_.max_batch_size},
                    {"max_batch_delay_us", policy_.max_batch_delay_us},
                    {"measure_memory", budget_.enabled()},
                    {"empty_cache_after_request", policy_.empty_cache_after_request}});
}

void WorkerManager::start() {
  started_ = true;
  if (fork_server_wanted()) {
    first_start_pending_ = true;  // the first worker is forked too, once it is ready
    start_fork_server(false);
  } else {
    start_current();
  }
  housekeep();
}

void WorkerManager::start_fork_server(bool for_reload) {
  std::weak_ptr<WorkerManager> weak = shared_from_this();
  ForkServer::Events events;
  events.ready = [weak](ForkServer& s) {
    if (auto self = weak.lock()) self->on_fork_server_ready(s);
  };
  events.exited = [weak](ForkServer& s) {
    if (auto self = weak.lock()) self->on_fork_server_exited(s);
  };
  auto server = std::make_shared<ForkServer>(io_, std::move(events));
  (for_reload ? next_fork_server_ : fork_server_) = server;
  auto args = worker_args();
  args.push_back("--fork-server");
  metrics_.on_fork_server_start();
  if (!server->start({options_.worker_bin, std::move(args), milliseconds(policy_.load_timeout_ms),
                      worker_environment(options_), nullptr})) {
    asio::post(io_, [weak, server] {
      if (auto self = weak.lock()) self->on_fork_server_exited(*server);
    });
  }
}

void WorkerManager::on_fork_server_ready(ForkServer& server) {
  if (&server == next_fork_server_.get()) {
    // A reload: the new model loaded. The old fork server goes; the worker follows gracefully.
    fork_server_ = std::move(next_fork_server_);
    fork_server_failures_ = 0;
    recycle_for(RecycleReason::reload, false);
    return finish_reload(server.status());
  }
  if (&server != fork_server_.get()) return;
  fork_server_failures_ = 0;
  if (std::exchange(first_start_pending_, false)) start_current();
}

void WorkerManager::on_fork_server_exited(ForkServer& server) {
  reap_strays();
  if (&server == next_fork_server_.get()) {
    next_fork_server_.reset();
    finish_reload(make_error(
        ErrorKind::internal,
        "the model did not load again (" + server.error() + "); the running one still serves"));
    if (fork_server_) return;  // the old one goes on; else one is started as after a failure
  } else if (&server == fork_server_.get()) {
    fork_server_.reset();
    metrics_.on_fork_server_failure();
    if (std::exchange(first_start_pending_, false)) start_current();  // cold
  } else {
    return;  // replaced, or switched off
  }
  if (stopping_ || !fork_server_wanted()) return;
  ++fork_server_failures_;
  const double base = policy_.restart_backoff_ms * std::pow(2.0, fork_server_failures_ - 1);
  const auto delay = milliseconds(static_cast<long>(
      std::min<double>(base, static_cast<double>(policy_.restart_backoff_max_ms))));
  spdlog::warn("workers start cold until the fork server is back (restarting it in {} ms)",
               delay.count());
  fork_server_timer_.expires_after(delay);
  fork_server_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopping_ || !self->fork_server_wanted()) return;
    if (!self->fork_server_ && !self->next_fork_server_) self->start_fork_server(false);
  });
}

void WorkerManager::reap_strays() {
  strays_dying_ = false;
  // Every process running the worker binary that is our child is a worker or a fork server
  // we know, or a stray. A child's pid cannot be reused before we reap it: kill() is safe.
  std::vector<pid_t> known;
  for (const auto* w : {&current_, &spare_}) {
    if (*w) known.push_back((*w)->pid());
  }
  for (const auto& w : retiring_) known.push_back(w->pid());
  for (const auto* f : {&fork_server_, &next_fork_server_}) {
    if (*f) known.push_back((*f)->pid());
  }
  const auto name = std::filesystem::path(options_.worker_bin).filename().string();
  if (name.empty()) return;
  for (const pid_t pid : children_named(name)) {
    if (std::find(known.begin(), known.end(), pid) != known.end()) continue;
    if (::waitpid(pid, nullptr, WNOHANG) == pid) {
      spdlog::warn(
          "reaped process {}, a worker forked by a fork server that ended before it "
          "said so",
          pid);
      continue;
    }
    ::kill(pid, SIGKILL);
    strays_dying_ = true;
  }
}

void WorkerManager::reload(std::function<void(Result<nlohmann::json>)> done) {
  if (reload_done_) {
    return done(make_error(ErrorKind::unavailable, "a reload is already in progress"));
  }
  if (!fork_server_wanted()) {
    recycle_for(RecycleReason::reload, false);
    return done(nlohmann::json(nullptr));
  }
  spdlog::info("reload: loading {} in a new fork server", options_.model);
  reload_done_ = std::move(done);
  start_fork_server(true);
}

void WorkerManager::finish_reload(Result<nlohmann::json> result) {
  if (auto done = std::exchange(reload_done_, nullptr)) done(std::move(result));
}

// Age is checked at idle moments; a worker that stays idle is checked here once a second.
void WorkerManager::housekeep() {
  housekeeping_timer_.expires_after(std::chrono::seconds(1));
  housekeeping_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopping_) return;
    if (self->strays_dying_) self->reap_strays();
    self->check_worker();
    self->housekeep();
  });
}

// A cold worker's command line (without the executable); a forked one gets the same.
std::vector<std::string> WorkerManager::worker_args() const {
  std::vector<std::string> args = {"--ipc-fd",     "3",
                                   "--parent-pid", std::to_string(::getpid()),
                                   "--model",      options_.model,
                                   "--device",     options_.device,
                                   "--threads",    std::to_string(options_.worker_threads)};
  if (!options_.task.empty()) args.insert(args.end(), {"--task", options_.task});
  if (!options_.tokenizer.empty()) args.insert(args.end(), {"--tokenizer", options_.tokenizer});
  if (options_.enable_fault_injection) args.push_back("--enable-fault-injection");
  return args;
}

std::shared_ptr<Worker> WorkerManager::spawn_worker() {
  std::weak_ptr<WorkerManager> weak = shared_from_this();
  Worker::Events events;
  events.ready = [weak](Worker& w) {
    if (auto self = weak.lock()) self->on_ready(w);
  };
  events.answer = [weak](Worker& w, ipc::Frame frame) {
    if (auto self = weak.lock()) self->on_answer(w, std::move(frame));
  };
  events.token = [weak](Worker& w, std::uint64_t id, std::string_view text,
                        const nlohmann::json& logprobs) {
    if (auto self = weak.lock()) self->on_token(w, id, text, logprobs);
  };
  events.exited = [weak](Worker& w) {
    if (auto self = weak.lock()) self->on_exited(w);
  };
  auto args = worker_args();
  if (!start_fault_.empty()) args.insert(args.end(), {"--fault", start_fault_});
  auto worker =
      factory_({options_.worker_bin, std::move(args), milliseconds(policy_.load_timeout_ms),
                worker_environment(options_), fork_server_},
               std::move(events));
  if (!worker) return nullptr;
  ++starts_;
  metrics_.on_worker_start(worker->forked, worker->pid());
  worker->request_limit = draw_request_limit(policy_, rng_());
  configure(*worker);
  return worker;
}

void WorkerManager::start_current() {
  if (stopping_ || current_) return;
  current_ = spawn_worker();
  if (!current_) on_current_failed(RecycleReason::load_failure, false);
}

void WorkerManager::schedule_start() {
  if (stopping_ || current_) return;
  milliseconds delay{0};
  const auto now = Clock::now();
  if (breaker_.state(now) == CircuitBreaker::State::open) {
    // The half-open probe: one worker, once the cooldown is over.
    delay = std::chrono::duration_cast<milliseconds>(breaker_.open_until() - now);
  } else if (failed_starts_ > 0) {
    const double base = policy_.restart_backoff_ms * std::pow(2.0, failed_starts_ - 1);
    const double jitter = std::uniform_real_distribution<double>(0.8, 1.2)(rng_);
    delay = milliseconds(static_cast<long>(
        std::min<double>(base, static_cast<double>(policy_.restart_backoff_max_ms)) * jitter));
  }
  spdlog::info("starting a new worker in {} ms", delay.count());
  start_timer_.expires_after(delay);
  start_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (auto self = weak.lock(); self && !ec) self->start_current();
  });
}

WorkerUsage WorkerManager::usage(const Worker& w, bool with_memory) const {
  // Reading /proc costs a syscall; only pay for it when a limit needs it.
  const bool rss = with_memory && policy_.max_worker_rss_mb > 0;
  return {w.served(), w.request_limit, w.age_s(), rss ? w.rss_bytes() : 0,
          with_memory ? w.gpu_bytes() : 0};
}

bool WorkerManager::can_run(const Job& job) const {
  if (stopping_ || !current_ || pending_recycle_) return false;
  const auto state = current_->state();
  if (state != WorkerState::ready && state != WorkerState::busy) return false;
  if (inflight_.empty()) return true;
  // A replay runs alone, so that if it brings the worker down again it alone is to blame.
  if (job.replays > 0 || inflight_.begin()->second.job.replays > 0) return false;
  if (inflight_.size() >= policy_.max_batch_size) return false;
  if (current_->request_limit > 0 &&
      current_->served() + inflight_on(*current_) >= current_->request_limit) {
    return false;  // the rest of this worker's requests are in flight already
  }
  return budget_.admits(inflight_weight(), job.weight);
}

std::size_t WorkerManager::inflight_on(const Worker& worker) const {
  return static_cast<std::size_t>(
      std::count_if(inflight_.begin(), inflight_.end(),
                    [&](const auto& f) { return f.second.worker == &worker; }));
}

std::uint64_t WorkerManager::inflight_weight() const {
  std::uint64_t total = 0;
  for (const auto& [id, f] : inflight_) total += f.job.weight;
  return total;
}

Result<WorkerManager::Admit> WorkerManager::admission(const Job& job) {
  if (auto refused = refusal()) return *refused;
  if (auto why = budget_.never_fits(job.weight)) return make_error(ErrorKind::too_large, *why);
  if (quarantine_.refuses(job, Clock::now())) {
    metrics_.on_quarantine_refusal();
    return make_error(ErrorKind::worker_failed,
                      "an identical request is quarantined as poison (it brought workers down "
                      "by itself; GET /admin/quarantine lists it); it is not sent again");
  }
  return can_run(job) ? Admit::now : Admit::later;
}

std::map<std::uint64_t, WorkerManager::InFlight>::iterator WorkerManager::find_job(
    std::uint64_t job_id) {
  return std::find_if(inflight_.begin(), inflight_.end(),
                      [job_id](const auto& entry) { return entry.second.job.id == job_id; });
}

bool WorkerManager::ready() const {
  if (!current_ || breaker_.state(Clock::now()) == CircuitBreaker::State::open) return false;
  return current_->state() == WorkerState::ready || current_->state() == WorkerState::busy;
}

std::optional<Error> WorkerManager::refusal() const {
  const auto now = Clock::now();
  if (breaker_.state(now) != CircuitBreaker::State::open) return std::nullopt;
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(breaker_.open_until() - now);
  Error error = make_error(ErrorKind::unavailable,
                           "the worker is in a crash loop; the circuit breaker is open");
  error.retry_after_s = static_cast<unsigned>(std::max<long>(1, left.count() + 1));
  return error;
}

void WorkerManager::run(Job job) {
  assert(can_run(job) && "WorkerManager::run without can_run");
  const std::uint64_t id = next_request_id_++;
  current_->send(job, id, milliseconds(policy_.hang_timeout_ms));
  inflight_.emplace(id,
                    InFlight{std::move(job), Clock::now(), false, std::nullopt, current_.get()});
  metrics_.set_inflight(inflight_.size());
  maybe_prestart_spare();
}

// A hot spare: with prestart_spare on, the next worker is loaded as soon as the current one
// serves, so a planned recycle (and even a crash) swaps to a ready worker instead of waiting
// for a load. It costs a second copy of the model in memory; that is the knob's trade-off.
void WorkerManager::maybe_prestart_spare() {
  if (!policy_.prestart_spare || spare_ || !current_ || stopping_) return;
  if (current_->state() != WorkerState::ready && current_->state() != WorkerState::busy) return;
  if (breaker_.state(Clock::now()) != CircuitBreaker::State::closed) return;
  spdlog::info("loading a spare worker behind {}", current_->pid());
  spare_ = spawn_worker();
}

void WorkerManager::on_ready(Worker& worker) {
  metrics_.on_worker_ready(seconds_since(worker.spawned_at()), worker.pid());
  const bool first = model_info_.is_null();
  model_info_ = worker.info();
  if (first) configure(worker);  // now that the device and task are known
  if (&worker == current_.get() || !current_) {
    budget_.set_base(memory_after_load(model_info_));
  }
  breaker_.on_ready();
  failed_starts_ = 0;
  if (&worker == spare_.get()) {
    if (!current_) return promote_spare();
    return check_worker();  // a recycle due may hand over to it now
  }
  metrics_.set_ready(ready());
  check_worker();
  maybe_prestart_spare();
}

// A cpu worker forked by the fork server costs a few milliseconds and, its weights being shared
// copy-on-write, little memory: instead of letting the batch in flight drain, or the retiring
// worker exit, before the replacement even starts, the replacement is forked as the recycle
// becomes due, and takes over (as a spare would) once ready. Not on a GPU: two workers there
// hold two copies of the model (prestart_spare is the operator's say-so for that).
void WorkerManager::fork_successor() {
  if (stopping_ || !fork_server_ || fork_server_->state() != ForkServer::State::ready) return;
  if (json_get<std::string>(model_info_, "device", "") != "cpu") return;
  if (breaker_.state(Clock::now()) != CircuitBreaker::State::closed) return;
  spdlog::info("forking the successor of worker {}", current_->pid());
  spare_ = spawn_worker();
}

void WorkerManager::promote_spare() {
  current_ = std::move(spare_);
  spare_.reset();
  if (current_->reached_ready()) current_->start_serving();
  spdlog::info("worker {} takes over", current_->pid());
  budget_.set_base(memory_after_load(current_->info()));
  metrics_.set_ready(ready());
  check_worker();
  maybe_prestart_spare();
}

void WorkerManager::on_token(Worker& worker, std::uint64_t request_id, std::string_view text,
                             const nlohmann::json& logprobs) {
  const auto it = inflight_.find(request_id);
  if (it == inflight_.end() || it->second.worker != &worker) return;
  auto& flight = it->second;
  if (!flight.first_token) flight.first_token = Clock::now();
  if (flight.answered || (text.empty() && logprobs.is_null()) || !flight.job.on_text) return;
  flight.job.streamed = true;
  flight.job.on_text(text, logprobs);
}

void WorkerManager::count_result(const InFlight& flight, const nlohmann::json& result) {
  metrics_.on_batch(json_get<std::uint64_t>(result, "batch_size", 1));
  if (flight.job.type != ipc::MessageType::generate) return;
  const auto generated = json_get<std::uint64_t>(result, "completion_tokens", 0);
  metrics_.on_tokens(json_get<std::uint64_t>(result, "prompt_tokens", 0), generated);
  if (!flight.first_token) return;
  // From arrival (the scheduler's admission), as the client waits, queue and replays included.
  const auto arrived =
      flight.job.enqueued == Clock::time_point{} ? flight.started : flight.job.enqueued;
  metrics_.on_first_token(std::chrono::duration<double>(*flight.first_token - arrived).count());
  if (generated > 1) {
    metrics_.on_time_per_output_token(seconds_since(*flight.first_token) /
                                      static_cast<double>(generated - 1));
  }
}

void WorkerManager::on_answer(Worker& worker, ipc::Frame frame) {
  const auto it = inflight_.find(frame.request_id);
  if (it == inflight_.end() || it->second.worker != &worker) return;
  InFlight flight = std::move(it->second);
  Job& job = flight.job;
  const bool answered = flight.answered;
  metrics_.on_inference(job.route, seconds_since(flight.started));
  inflight_.erase(it);
  metrics_.set_inflight(inflight_.size());
  if (frame.type == ipc::MessageType::error) {
    const auto error = worker_error_from_json(parse_json(frame.json));
    if (!error.healthy) {
      // The worker says it is poisoned (a sticky CUDA error): replace it, and give the
      // request, which may only be a victim, a fresh worker. Only a request that ran alone can
      // be blamed.
      const RecycleReason reason = unhealthy_reason(error.kind);
      worker.kill(reason);  // first: from here on it takes no work
      if (answered) return;
      ++job.failures;
      std::optional<std::string> evidence;
      if (inflight_on(worker) == 0) {
        evidence = "the worker reported itself broken (" + std::string(to_string(reason)) + ")";
      }
      return handle_failed_job(std::move(job), reason, to_client_error(error), evidence);
    }
    if (answered) return check_worker(true);
    auto client_error = to_client_error(error);
    client_error.worker_pid = worker.pid();  // which process refused it, as a result says
    job.done(std::move(client_error));
  } else {
    // The result's JSON is small (tensor data travels as the frame's binary part, a generation's
    // text is at most max_tokens long); its handler parses it again.
    const auto result = parse_json(frame.json);
    worker.set_gpu_bytes(json_get<std::uint64_t>(result, "gpu_memory_bytes", 0));
    learn_memory(result);
    count_result(flight, result);
    if (!answered) job.done(std::move(frame));
  }
  check_worker(true);
}

void WorkerManager::learn_memory(const nlohmann::json& result) {
  const auto& memory = json_field(result, "memory");
  if (memory.is_object()) {
    budget_.observe(json_get<std::uint64_t>(memory, "base_bytes", 0),
                    json_get<std::uint64_t>(memory, "peak_bytes", 0),
                    json_get<std::uint64_t>(memory, "batch_weight", 0));
  }
  const auto& oom = json_field(result, "oom");
  if (oom.is_object()) {
    metrics_.on_batch_oom();
    budget_.observe_oom(json_get<std::uint64_t>(oom, "batch_weight", 0));
  }
}

void WorkerManager::check_worker(bool after_request) {
  if (!current_ || stopping_) return;
  const auto state = current_->state();
  if (state != WorkerState::ready && state != WorkerState::busy) return;
  if (!pending_recycle_) {
    auto u = usage(*current_, after_request);
    u.served += inflight_on(*current_);  // the ones in flight will count once answered
    pending_recycle_ = planned_recycle_reason(policy_, u);
  }
  if (pending_recycle_) {
    // Retired once its requests are answered; or at once when a ready spare can take the new
    // ones meanwhile (the retiring worker still answers those it runs).
    if (inflight_on(*current_) > 0) {
      if (!spare_) fork_successor();
      if (!spare_ || !spare_->reached_ready()) return;
    }
    return retire_current(*std::exchange(pending_recycle_, std::nullopt));
  }
  if (hooks_.idle) hooks_.idle();
}

void WorkerManager::retire_current(RecycleReason reason) {
  count_recycle(reason, current_->pid());
  if (!spare_) fork_successor();  // on cpu: no need to wait for the old one's exit
  auto old = std::move(current_);
  current_.reset();
  old->drain(reason, milliseconds(policy_.drain_timeout_ms));
  retiring_.push_back(std::move(old));
  // With a spare (or a successor) it takes over now; without, the replacement starts once the
  // old worker has exited and freed its (GPU) memory, in on_exited.
  if (spare_) promote_spare();
  metrics_.set_ready(ready());
}

void WorkerManager::on_exited(Worker& worker) {
  const auto keep = worker.shared_from_this();
  const RecycleReason reason = worker.exit_reason();
  if (&worker == spare_.get()) {
    spare_.reset();
    if (!stopping_) count_recycle(reason, worker.pid());
    return finish_stop_if_done();
  }
  if (&worker != current_.get()) {       // a retiring worker is gone
    handle_caught_jobs(worker, reason);  // those it ran when a spare took over
    retiring_.remove(keep);
    if (!current_ && !spare_) start_current();
    return finish_stop_if_done();
  }
  current_.reset();
  pending_recycle_.reset();
  metrics_.set_ready(false);
  handle_caught_jobs(worker, reason);
  if (stopping_) return finish_stop_if_done();
  if (reason == RecycleReason::by_operator) {
    if (spare_) return promote_spare();
    return start_current();
  }
  on_current_failed(reason, worker.reached_ready(), worker.pid());
}

void WorkerManager::handle_caught_jobs(Worker& worker, RecycleReason reason) {
  std::map<std::uint64_t, InFlight> caught;
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    if (it->second.worker == &worker) {
      caught.insert(inflight_.extract(it++));
    } else {
      ++it;
    }
  }
  if (caught.empty()) return;
  metrics_.set_inflight(inflight_.size());
  // A death is evidence against a request only if that request ran alone.
  const auto evidence = caught.size() == 1 ? worker.fault_evidence() : std::nullopt;
  // Newest first, as each goes back to the head of the queue: they keep their order.
  for (auto it = caught.rbegin(); it != caught.rend(); ++it) {
    if (it->second.answered) continue;  // its client's deadline answered it already
    Job job = std::move(it->second.job);
    if (stopping_) {
      job.done(make_error(ErrorKind::unavailable, "the server is shutting down"));
    } else if (!charges_requests_in_flight(reason)) {
      // Not their fault: an operator's recycle, or another request's deadline (that one was
      // answered 504 already).
      if (hooks_.requeue_front) hooks_.requeue_front(std::move(job));
    } else {
      ++job.failures;
      handle_failed_job(
          std::move(job), reason,
          make_error(ErrorKind::worker_failed, "the worker died while serving this request (" +
                                                   std::string(to_string(reason)) + ")"),
          evidence);
    }
  }
}

void WorkerManager::on_current_failed(RecycleReason reason, bool reached_ready, pid_t pid) {
  count_recycle(reason, pid);
  if (!reached_ready) ++failed_starts_;  // backoff grows only while workers fail to start
  if (counts_for_breaker(reason) && breaker_.on_failure(Clock::now())) {
    spdlog::error("crash loop: {} failures; circuit breaker open for {} s",
                  policy_.crash_loop_failures, policy_.crash_loop_cooldown_s);
    metrics_.on_breaker_open(std::to_string(policy_.crash_loop_failures) + " failures; open for " +
                             std::to_string(policy_.crash_loop_cooldown_s) + " s");
    if (hooks_.fail_queued) hooks_.fail_queued(*refusal());
  }
  if (spare_) return promote_spare();
  schedule_start();
}

void WorkerManager::handle_failed_job(Job job, RecycleReason reason, const Error& if_not_replayed,
                                      const std::optional<std::string>& evidence) {
  // Text already sent to a streaming client cannot be taken back: no replay for it.
  Policy limits = policy_;
  if (job.streamed) limits.replay_limit = 0;
  switch (failed_job_action(limits, job.failures, job.replays, evidence.has_value())) {
    case FailedJobAction::quarantine:
      metrics_.on_quarantined("request " + std::to_string(job.id) + ": " + *evidence);
      quarantine_.add(job, *evidence, Clock::now());
      quarantine_size();
      spdlog::error(
          "request {} quarantined: present at {} worker failures; the last one ran it "
          "alone and {} ({})",
          job.id, job.failures, *evidence, to_string(reason));
      return job.done(make_error(
          ErrorKind::worker_failed,
          "request quarantined as poison: it was present at " + std::to_string(job.failures) +
              " worker failures, and the last worker, running it alone, " + *evidence + " (" +
              std::string(to_string(reason)) + "); identical requests are refused for " +
              std::to_string(policy_.quarantine_ttl_s) + " s"));
    case FailedJobAction::replay:
      ++job.replays;
      metrics_.on_replayed("request " + std::to_string(job.id) + " after " +
                           std::string(to_string(reason)));
      spdlog::warn("replaying request {} on a fresh worker (after {})", job.id, to_string(reason));
      if (hooks_.requeue_front) return hooks_.requeue_front(std::move(job));
      break;
    case FailedJobAction::fail:
      break;
  }
  job.done(if_not_replayed);
}

nlohmann::json WorkerManager::quarantine_list() {
  quarantine_size();
  return quarantine_.list(Clock::now());
}

std::size_t WorkerManager::clear_quarantine(const std::string& id) {
  const auto cleared = quarantine_.clear(id);
  quarantine_size();
  return cleared;
}

std::size_t WorkerManager::quarantine_size() {
  const auto size = quarantine_.size(Clock::now());
  metrics_.set_quarantine_entries(size);
  return size;
}

bool WorkerManager::cancel(std::uint64_t job_id) {
  const auto it = find_job(job_id);
  if (it == inflight_.end()) return false;
  it->second.worker->cancel(it->first);
  return true;
}

bool WorkerManager::expire(std::uint64_t job_id, const Error& error, bool kill_worker) {
  const auto it = find_job(job_id);
  if (it == inflight_.end()) return false;
  if (!std::exchange(it->second.answered, true)) it->second.job.done(error);
  Worker& worker = *it->second.worker;
  if (kill_worker) {
    inflight_.erase(it);
    metrics_.set_inflight(inflight_.size());
    worker.kill(RecycleReason::timeout);
    return false;
  }
  worker.cancel(it->first);
  return true;
}

void WorkerManager::recycle(bool now) {
  recycle_for(RecycleReason::by_operator, now);
}

void WorkerManager::recycle_for(RecycleReason reason, bool now) {
  if (!current_) return;
  if (now || current_->state() == WorkerState::spawning) {
    count_recycle(reason, current_->pid());
    return current_->kill(reason);
  }
  pending_recycle_ = reason;
  maybe_prestart_spare();
  check_worker();
}

void WorkerManager::count_recycle(RecycleReason reason, pid_t pid) {
  last_recycle_reason_ = reason;
  metrics_.on_recycle(std::string(to_string(reason)), pid);
  spdlog::info("worker recycle: {}", to_string(reason));
}

void WorkerManager::stop(std::function<void()> done) {
  stopping_ = true;
  on_stopped_ = std::move(done);
  start_timer_.cancel();
  housekeeping_timer_.cancel();
  fork_server_timer_.cancel();
  fork_server_.reset();  // killed and reaped
  next_fork_server_.reset();
  finish_reload(make_error(ErrorKind::unavailable, "the server is stopping"));
  for (auto* w : {&current_, &spare_}) {
    if (!*w) continue;
    if ((*w)->state() == WorkerState::busy) {
      (*w)->kill(RecycleReason::shutdown);
    } else {
      (*w)->drain(RecycleReason::shutdown, milliseconds(2000));
    }
  }
  finish_stop_if_done();
}

void WorkerManager::finish_stop_if_done() {
  if (!stopping_ || current_ || spare_ || !retiring_.empty() || !on_stopped_) return;
  std::exchange(on_stopped_, nullptr)();
}

CircuitBreaker::State WorkerManager::breaker_state() const {
  return breaker_.state(Clock::now());
}

WorkerManager::Current WorkerManager::current_worker() const {
  if (!current_) return {};
  return {current_->state(), current_->age_s()};
}

WorkerManager::Memory WorkerManager::current_memory() const {
  if (!current_) return {};
  return {current_->rss_bytes(), current_->gpu_bytes()};
}

nlohmann::json WorkerManager::status() const {
  nlohmann::json j =
      current_ ? current_->status() : nlohmann::json{{"pid", 0}, {"state", "starting"}};
  j["workers_started"] = starts_;
  j["last_recycle_reason"] = last_recycle_reason_ ? to_string(*last_recycle_reason_) : "";
  j["spare"] = spare_ ? spare_->status() : nlohmann::json(nullptr);
  j["retiring"] = nlohmann::json::array();
  for (const auto& w : retiring_) j["retiring"].push_back(w->status());
  j["breaker"] = {{"state", to_string(breaker_state())}};
  if (auto r = refusal()) j["breaker"]["retry_after_s"] = r->retry_after_s;
  j["requests_in_flight"] = inflight_.size();
  j["memory_budget"] = budget_.status();
  if (!start_fault_.empty()) j["start_fault"] = start_fault_;
  j["fork_server"] = fork_server_ ? fork_server_->status() : nlohmann::json(nullptr);
  if (next_fork_server_) j["next_fork_server"] = next_fork_server_->status();
  return j;
}

}  // namespace respawn
