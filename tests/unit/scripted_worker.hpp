#pragma once
// An in-process Worker (supervisor/lifecycle/worker.hpp) that a unit test drives: it records
// what the WorkerManager asks of it (requests sent, cancels, configure frames, drain and kill)
// and fires the events a real worker process would (ready, an answer, streamed text, the exit
// after it was reaped) when the test says so. ScriptedWorkers is the factory that keeps every
// worker it made, in order. Single-threaded, like the manager.
#include <algorithm>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lifecycle/worker.hpp"
#include "respawn/policy.hpp"
#include "respawn/worker_error.hpp"

namespace respawn::test {

class ScriptedWorker final : public Worker {
 public:
  ScriptedWorker(pid_t pid, WorkerLaunch launch, Events events)
      : launch(std::move(launch)), pid_(pid), events_(std::move(events)) {}

  // --- the test's side: what the process would do ---
  void become_ready(nlohmann::json info = {{"device", "cpu"}, {"task", "generate"}}) {
    if (state_ != WorkerState::spawning) throw std::logic_error("ready twice");
    info_ = std::move(info);
    reached_ready_ = true;
    ready_at_ = Clock::now();
    state_ = WorkerState::ready;
    events_.ready(*this);
  }
  // Answers request `id` (the IPC request id, as in sent): a result with `json`.
  void answer(std::uint64_t id, std::string json = R"({"text":"ok"})") {
    finish(id, {ipc::MessageType::result, id, std::move(json), {}});
  }
  void answer_error(std::uint64_t id, const WorkerError& error) {
    finish(id, {ipc::MessageType::error, id, to_json(error).dump(), {}});
  }
  // Request `id` produced a token with `text` (may be empty) and `logprobs` (null: none).
  void stream(std::uint64_t id, std::string_view text, const nlohmann::json& logprobs = nullptr) {
    events_.token(*this, id, text, logprobs);
  }
  // The process is gone and reaped. `reason` is what it died of when nothing on the
  // supervisor's side ended it first (kill and drain reasons stick, as in the real one).
  void reap(RecycleReason reason = RecycleReason::crash,
            std::optional<std::string> evidence = std::nullopt) {
    if (state_ == WorkerState::exited) throw std::logic_error("reaped twice");
    if (!exit_reason_) exit_reason_ = reached_ready_ ? reason : RecycleReason::load_failure;
    evidence_ = std::move(evidence);
    state_ = WorkerState::exited;
    events_.exited(*this);
  }
  std::uint64_t last_sent() const { return sent.empty() ? 0 : sent.back(); }
  const std::vector<std::uint64_t>& in_flight_ids() const { return inflight_; }

  // --- what the manager asked for ---
  WorkerLaunch launch;
  std::vector<std::uint64_t> sent;         // IPC request ids, in order
  std::vector<std::string> sent_payloads;  // their jobs' JSON
  std::vector<std::uint64_t> cancelled;
  std::vector<nlohmann::json> configured;
  std::optional<RecycleReason> drained;  // drain(reason)
  std::optional<RecycleReason> killed;   // kill(reason)
  std::uint64_t rss = 0;                 // what rss_bytes() reports

  // --- Worker ---
  void send(const Job& job, std::uint64_t request_id, std::chrono::milliseconds) override {
    sent.push_back(request_id);
    sent_payloads.push_back(job.json);
    inflight_.push_back(request_id);
    state_ = WorkerState::busy;
  }
  void cancel(std::uint64_t request_id) override { cancelled.push_back(request_id); }
  void configure(const nlohmann::json& settings) override { configured.push_back(settings); }
  void drain(RecycleReason reason, std::chrono::milliseconds) override {
    if (state_ == WorkerState::exited) return;
    if (!drained) drained = reason;
    if (!exit_reason_) exit_reason_ = reason;
    state_ = WorkerState::draining;
  }
  void kill(RecycleReason reason) override {
    if (!killed) killed = reason;
    if (!exit_reason_) exit_reason_ = reason;
    if (state_ != WorkerState::exited) state_ = WorkerState::draining;
  }
  WorkerState state() const override { return state_; }
  bool reached_ready() const override { return reached_ready_; }
  pid_t pid() const override { return pid_; }
  std::size_t inflight() const override { return inflight_.size(); }
  RecycleReason exit_reason() const override { return exit_reason_.value_or(RecycleReason::crash); }
  std::optional<std::string> fault_evidence() const override {
    return exit_reason() == RecycleReason::crash ? evidence_ : std::nullopt;
  }
  const nlohmann::json& info() const override { return info_; }
  std::uint64_t served() const override { return served_; }
  double age_s() const override {
    return reached_ready_ ? std::chrono::duration<double>(Clock::now() - ready_at_).count() : 0;
  }
  void start_serving() override { ready_at_ = Clock::now(); }
  Clock::time_point spawned_at() const override { return spawned_at_; }
  std::uint64_t rss_bytes() const override { return rss; }
  // The test may age a worker.
  void set_ready_at(Clock::time_point t) { ready_at_ = t; }

 private:
  void finish(std::uint64_t id, ipc::Frame frame) {
    const auto it = std::find(inflight_.begin(), inflight_.end(), id);
    if (it == inflight_.end()) throw std::logic_error("answer to a request not in flight");
    inflight_.erase(it);
    ++served_;
    if (inflight_.empty()) state_ = WorkerState::ready;
    events_.answer(*this, std::move(frame));
  }

  pid_t pid_;
  Events events_;
  WorkerState state_ = WorkerState::spawning;
  bool reached_ready_ = false;
  std::optional<RecycleReason> exit_reason_;
  std::optional<std::string> evidence_;
  nlohmann::json info_;
  std::uint64_t served_ = 0;
  std::vector<std::uint64_t> inflight_;
  Clock::time_point spawned_at_ = Clock::now();
  Clock::time_point ready_at_{};
};

// The factory: every worker it made, in order (pids 1001, 1002, ...). With `fail` set, starts
// fail (nullptr, as when posix_spawn fails).
struct ScriptedWorkers {
  std::vector<std::shared_ptr<ScriptedWorker>> made;
  bool fail = false;
  int failed_starts = 0;

  WorkerFactory factory() {
    return [this](const WorkerLaunch& launch, Worker::Events events) -> std::shared_ptr<Worker> {
      if (fail) {
        ++failed_starts;
        return nullptr;
      }
      made.push_back(std::make_shared<ScriptedWorker>(static_cast<pid_t>(1001 + made.size()),
                                                      launch, std::move(events)));
      return made.back();
    };
  }
  ScriptedWorker& last() {
    if (made.empty()) throw std::logic_error("no worker was made");
    return *made.back();
  }
};

// A default Policy with some numeric knobs changed: policy_with({{&Policy::max_requests, 2}}).
inline Policy policy_with(
    std::initializer_list<std::pair<std::uint64_t Policy::*, std::uint64_t>> knobs) {
  Policy policy;
  for (const auto& [knob, value] : knobs) policy.*knob = value;
  return policy;
}

}  // namespace respawn::test
