#include "scheduling/scheduler.hpp"

#include <boost/asio/post.hpp>

namespace respawn {

using std::chrono::milliseconds;

Scheduler::Scheduler(boost::asio::io_context& io, std::size_t max_queue,
                     std::shared_ptr<WorkerManager> manager, Metrics& metrics)
    : io_(io), queue_(max_queue), manager_(std::move(manager)), metrics_(metrics) {
  manager_->set_hooks({[this] { dispatch(); }, [this](Job job) { requeue_front(std::move(job)); },
                       [this](const Error& error) { fail_queued(error); }});
}

Result<std::uint64_t> Scheduler::submit(Job job) {
  if (closed_) return make_error(ErrorKind::unavailable, "the server is shutting down");
  const auto admit = manager_->admission(job);
  if (!admit) return admit.error();
  const std::uint64_t id = next_id_++;
  job.id = id;
  job.enqueued = std::chrono::steady_clock::now();
  // Every answer passes here: the deadline is cancelled and a drain may be complete.
  job.done = [this, id, done = std::move(job.done)](JobOutcome outcome) {
    deadlines_.erase(id);
    done(std::move(outcome));
    check_drained();
  };
  const milliseconds server(manager_->policy().request_timeout_ms);
  if (job.timeout && (server.count() == 0 || *job.timeout < server)) {
    arm_deadline(id, *job.timeout, Deadline::client);
  } else if (server.count() > 0) {
    arm_deadline(id, server, Deadline::server);
  }
  if (queue_.empty() && *admit == WorkerManager::Admit::now) {
    metrics_.on_queue_wait(job.route, 0);
    if (job.on_dispatch) job.on_dispatch();
    manager_->run(std::move(job));
    return id;
  }
  if (queue_.push(std::move(job))) {
    deadlines_.erase(id);
    return make_error(ErrorKind::unavailable,
                      "the queue is full (" + std::to_string(queue_.capacity()) + " waiting)");
  }
  metrics_.set_queue_depth(queue_.size());
  return id;
}

void Scheduler::cancel(std::uint64_t id) {
  if (auto job = queue_.remove(id)) {
    metrics_.on_cancelled();
    metrics_.set_queue_depth(queue_.size());
    return job->done(make_error(ErrorKind::cancelled, "the client closed the connection"));
  }
  if (manager_->cancel(id)) metrics_.on_cancelled();
}

void Scheduler::dispatch() {
  while (queue_.front() && manager_->can_run(*queue_.front())) {
    auto job = queue_.pop();
    metrics_.set_queue_depth(queue_.size());
    metrics_.on_queue_wait(
        job->route,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - job->enqueued).count());
    if (job->on_dispatch) job->on_dispatch();
    manager_->run(std::move(*job));
  }
}

// Called from inside the manager's failure handling: only queue here; the manager says when
// a fresh worker is idle.
void Scheduler::requeue_front(Job job) {
  queue_.push_front(std::move(job));
  metrics_.set_queue_depth(queue_.size());
}

void Scheduler::fail_queued(const Error& error) {
  queue_.fail_all(error);
  metrics_.set_queue_depth(0);
}

void Scheduler::arm_deadline(std::uint64_t id, milliseconds after, Deadline kind) {
  auto timer = std::make_unique<boost::asio::steady_timer>(io_, after);
  timer->async_wait([this, id, after, kind](const boost::system::error_code& ec) {
    if (!ec) on_deadline(id, after, kind);
  });
  deadlines_[id] = std::move(timer);
}

void Scheduler::on_deadline(std::uint64_t id, milliseconds after, Deadline kind) {
  if (kind == Deadline::server_after_client) {
    // The worker never stopped a request whose client deadline passed: it is stuck on it.
    deadlines_.erase(id);  // its answer went out already: nothing else erases this timer
    manager_->expire(id, make_error(ErrorKind::timeout, "request_timeout_ms"), true);
    return;
  }
  metrics_.on_timed_out();
  const std::string limit = std::to_string(after.count()) + " ms deadline";
  if (auto job = queue_.remove(id)) {
    metrics_.set_queue_depth(queue_.size());
    return job->done(
        make_error(ErrorKind::timeout, "the request waited in the queue past its " + limit));
  }
  if (kind == Deadline::server) {
    manager_->expire(id,
                     make_error(ErrorKind::timeout, "the request ran past the server's " + limit +
                                                        " (request_timeout_ms); its worker was "
                                                        "replaced"),
                     true);
    return;
  }
  // The client's own deadline ends the request, never the worker: the worker is asked to stop
  // it, and only the server's request_timeout_ms, counted from the same start, may kill it.
  const bool at_worker = manager_->expire(
      id, make_error(ErrorKind::timeout, "the request ran past its " + limit + "; it was stopped"),
      false);
  const milliseconds server(manager_->policy().request_timeout_ms);
  if (at_worker && server > after) arm_deadline(id, server - after, Deadline::server_after_client);
}

void Scheduler::drain(milliseconds timeout, std::function<void()> drained) {
  closed_ = true;
  drained_ = std::move(drained);
  drain_timer_ = std::make_unique<boost::asio::steady_timer>(io_, timeout);
  drain_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || !drained_) return;
    // Taken first: the failed jobs' answers call check_drained, which must not post it too.
    auto drained = std::exchange(drained_, nullptr);
    fail_queued(make_error(ErrorKind::unavailable, "the server shut down before serving this"));
    boost::asio::post(io_, std::move(drained));
  });
  check_drained();
}

void Scheduler::check_drained() {
  if (!closed_ || !drained_ || !queue_.empty() || manager_->busy()) return;
  drain_timer_->cancel();
  // Posted: this may run inside the manager's answer handling.
  boost::asio::post(io_, std::exchange(drained_, nullptr));
}

}  // namespace respawn
