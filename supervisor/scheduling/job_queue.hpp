#pragma once
// The bounded queue of jobs waiting for the worker: higher priority first, FIFO within a
// priority level, replays before all. Refuses, rather than grows, when full, so overload
// turns into fast 503s instead of unbounded latency. (A steady stream of high-priority work
// can starve the lowest level; that is what priorities are for.) Not thread-safe: owned by the
// scheduler on the I/O thread.
#include <cstddef>
#include <deque>
#include <optional>

#include "lifecycle/job.hpp"

namespace respawn {

class JobQueue {
 public:
  explicit JobQueue(std::size_t capacity) : capacity_(capacity) {}

  // Appends the job; hands it back untouched when the queue is full.
  std::optional<Job> push(Job job);
  std::optional<Job> pop();
  const Job* front() const { return jobs_.empty() ? nullptr : &jobs_.front(); }
  // Puts a job back at the head (a replay), even past capacity: it was admitted already.
  void push_front(Job job);
  // Takes out the job with this id, if it is queued.
  std::optional<Job> remove(std::uint64_t id);
  // Fails every queued job with `error` (shutdown) and empties the queue.
  void fail_all(const Error& error);

  std::size_t size() const { return jobs_.size(); }
  bool empty() const { return jobs_.empty(); }
  std::size_t capacity() const { return capacity_; }

 private:
  std::size_t capacity_;
  std::deque<Job> jobs_;
};

}  // namespace respawn
