#include "scheduler.hpp"

namespace respawn {

Scheduler::Scheduler(std::size_t max_queue, std::shared_ptr<WorkerSlot> slot, Metrics& metrics)
    : queue_(max_queue), slot_(std::move(slot)), metrics_(metrics) {
  slot_->on_idle([this] { dispatch(); });
}

std::optional<Error> Scheduler::submit(Job job) {
  if (closed_) return make_error(ErrorKind::unavailable, "the server is shutting down");
  job.enqueued = std::chrono::steady_clock::now();
  if (slot_->idle() && queue_.empty()) {
    metrics_.on_queue_wait(0);
    slot_->run(std::move(job));
    return std::nullopt;
  }
  if (queue_.push(std::move(job))) {
    return make_error(ErrorKind::unavailable,
                      "the queue is full (" + std::to_string(queue_.capacity()) + " waiting)");
  }
  metrics_.set_queue_depth(queue_.size());
  return std::nullopt;
}

void Scheduler::dispatch() {
  while (slot_->idle()) {
    auto job = queue_.pop();
    if (!job) break;
    metrics_.set_queue_depth(queue_.size());
    metrics_.on_queue_wait(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - job->enqueued).count());
    slot_->run(std::move(*job));
  }
}

void Scheduler::close(const Error& reason) {
  closed_ = true;
  queue_.fail_all(reason);
  metrics_.set_queue_depth(0);
}

}  // namespace respawn
