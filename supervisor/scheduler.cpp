#include "scheduler.hpp"

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
  if (auto refused = manager_->refusal()) return *refused;
  if (auto too_big = manager_->never_fits(job)) return *too_big;
  if (manager_->is_poison(job)) {
    return make_error(ErrorKind::worker_failed,
                      "an identical request was quarantined as poison (it crashed workers); it "
                      "will not be sent again");
  }
  const std::uint64_t id = next_id_++;
  job.id = id;
  job.enqueued = std::chrono::steady_clock::now();
  // Every answer passes here: the deadline is cancelled and a drain may be complete.
  job.done = [this, id, done = std::move(job.done)](JobOutcome outcome) {
    deadlines_.erase(id);
    done(std::move(outcome));
    check_drained();
  };
  const auto timeout = deadline_of(job);
  if (timeout.count() > 0) {
    auto timer = std::make_unique<boost::asio::steady_timer>(io_, timeout);
    timer->async_wait([this, id, timeout](const boost::system::error_code& ec) {
      if (!ec) on_deadline(id, timeout);
    });
    deadlines_[id] = std::move(timer);
  }
  if (queue_.empty() && manager_->can_run(job)) {
    metrics_.on_queue_wait(0);
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
        std::chrono::duration<double>(std::chrono::steady_clock::now() - job->enqueued).count());
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

milliseconds Scheduler::deadline_of(const Job& job) const {
  const milliseconds server(manager_->policy().request_timeout_ms);
  if (!job.timeout) return server;
  return server.count() > 0 ? std::min(server, *job.timeout) : *job.timeout;
}

void Scheduler::on_deadline(std::uint64_t id, milliseconds timeout) {
  metrics_.on_timed_out();
  const std::string limit = std::to_string(timeout.count()) + " ms deadline";
  if (auto job = queue_.remove(id)) {
    metrics_.set_queue_depth(queue_.size());
    return job->done(
        make_error(ErrorKind::timeout, "the request waited in the queue past its " + limit));
  }
  manager_->expire(id, make_error(ErrorKind::timeout, "the request ran past its " + limit +
                                                          "; its worker was replaced"));
}

void Scheduler::drain(milliseconds timeout, std::function<void()> drained) {
  closed_ = true;
  drained_ = std::move(drained);
  drain_timer_ = std::make_unique<boost::asio::steady_timer>(io_, timeout);
  drain_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || !drained_) return;
    fail_queued(make_error(ErrorKind::unavailable, "the server shut down before serving this"));
    boost::asio::post(io_, std::exchange(drained_, nullptr));
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
