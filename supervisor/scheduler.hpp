#pragma once
// Admits requests into the bounded queue and feeds them to the worker one at a time, in
// arrival order. While no worker is ready, requests wait in the queue (a restart loses none of
// them). Lives on the I/O thread (not thread-safe); the slot and Metrics must outlive it.
#include <memory>
#include <optional>

#include "job_queue.hpp"
#include "metrics.hpp"
#include "worker_slot.hpp"

namespace respawn {

class Scheduler {
 public:
  Scheduler(std::size_t max_queue, std::shared_ptr<WorkerSlot> slot, Metrics& metrics);

  // Queues the job, or returns why not (503: queue full or shutting down). On success the
  // job's `done` will be called exactly once.
  std::optional<Error> submit(Job job);
  // Refuses new jobs and fails the queued ones; the one in flight finishes or fails with the
  // worker.
  void close(const Error& reason);
  std::size_t queued() const { return queue_.size(); }
  WorkerSlot& slot() { return *slot_; }
  const WorkerSlot& slot() const { return *slot_; }

 private:
  void dispatch();

  JobQueue queue_;
  std::shared_ptr<WorkerSlot> slot_;
  Metrics& metrics_;
  bool closed_ = false;
};

}  // namespace respawn
