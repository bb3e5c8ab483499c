#include "scheduling/job_queue.hpp"

#include <algorithm>

namespace respawn {

namespace {

// Replays go before everything: they were admitted, and waited, before any job queued now.
int rank(const Job& job) {
  return job.replays > 0 ? kPriorityLevels : job.priority;
}

}  // namespace

std::optional<Job> JobQueue::push(Job job) {
  if (jobs_.size() >= capacity_) return job;
  // Behind every job of the same or a higher rank: FIFO within a priority level.
  auto at = jobs_.end();
  while (at != jobs_.begin() && rank(*std::prev(at)) < rank(job)) --at;
  jobs_.insert(at, std::move(job));
  return std::nullopt;
}

std::optional<Job> JobQueue::pop() {
  if (jobs_.empty()) return std::nullopt;
  Job job = std::move(jobs_.front());
  jobs_.pop_front();
  return job;
}

void JobQueue::push_front(Job job) {
  jobs_.push_front(std::move(job));
}

std::optional<Job> JobQueue::remove(std::uint64_t id) {
  const auto it =
      std::find_if(jobs_.begin(), jobs_.end(), [id](const Job& job) { return job.id == id; });
  if (it == jobs_.end()) return std::nullopt;
  Job job = std::move(*it);
  jobs_.erase(it);
  return job;
}

void JobQueue::fail_all(const Error& error) {
  auto jobs = std::move(jobs_);
  jobs_.clear();
  for (auto& job : jobs) job.done(error);
}

}  // namespace respawn
