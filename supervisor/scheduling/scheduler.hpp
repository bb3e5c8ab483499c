#pragma once
// Admits requests into the bounded queue (WorkerManager::admission) and feeds them to the
// worker as it has room (WorkerManager::can_run), highest priority first, in arrival order
// within a priority, with replays first. Refuses at once a request the memory budget can never
// fit (413) or that is quarantined. Enforces each
// request's deadline (request_timeout_ms, queue included): a queued request past it is answered
// 504; one in flight is handed to the WorkerManager, which kills the worker. While no worker is
// ready, requests wait (a restart loses none of them); while the crash-loop breaker is open they
// are refused at once. Lives on the I/O thread (not thread-safe); the manager and Metrics must
// outlive it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "lifecycle/worker_manager.hpp"
#include "metrics.hpp"
#include "scheduling/job_queue.hpp"

namespace respawn {

class Scheduler {
 public:
  // Its callbacks capture `this`: never copied or moved (which the deleted copy also forbids).
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  Scheduler(boost::asio::io_context& io, std::size_t max_queue,
            std::shared_ptr<WorkerManager> manager, Metrics& metrics);

  // Queues the job, or returns why not (503: queue full, breaker open, shutting down). On
  // success the job's `done` will be called exactly once, and the job's id is returned.
  Result<std::uint64_t> submit(Job job);
  // The client left: a queued job is dropped (answered 499), one in flight is asked to stop.
  void cancel(std::uint64_t id);
  // Graceful shutdown: refuse new jobs, let queued and in-flight ones finish for up to
  // `timeout`, fail what is left with 503, then call `drained`.
  void drain(std::chrono::milliseconds timeout, std::function<void()> drained);
  bool accepting() const { return !closed_; }
  std::size_t queued() const { return queue_.size(); }
  boost::asio::io_context& io() { return io_; }  // the I/O thread's, for posting back to it
  WorkerManager& manager() { return *manager_; }
  const WorkerManager& manager() const { return *manager_; }

 private:
  void dispatch();
  void requeue_front(Job job);
  void fail_queued(const Error& error);
  // A request's deadline: the server's request_timeout_ms, or the client's own if shorter, and
  // after that one the rest of the server's for a request the worker has not stopped yet.
  enum class Deadline { server, client, server_after_client };
  void arm_deadline(std::uint64_t id, std::chrono::milliseconds after, Deadline kind);
  void on_deadline(std::uint64_t id, std::chrono::milliseconds after, Deadline kind);
  void check_drained();

  boost::asio::io_context& io_;
  JobQueue queue_;
  std::shared_ptr<WorkerManager> manager_;
  Metrics& metrics_;
  std::map<std::uint64_t, std::unique_ptr<boost::asio::steady_timer>> deadlines_;
  std::uint64_t next_id_ = 1;
  bool closed_ = false;
  std::function<void()> drained_;
  std::unique_ptr<boost::asio::steady_timer> drain_timer_;
};

}  // namespace respawn
