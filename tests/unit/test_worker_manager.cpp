// Tests for the WorkerManager (supervisor/lifecycle/worker_manager.hpp) driven in-process:
// its workers are ScriptedWorkers (scripted_worker.hpp), so each test says when a worker is
// ready, answers, streams, crashes or is reaped, and checks what the manager decided: what it
// sent, killed or drained, which worker it started or promoted, and what became of each job.
#include "lifecycle/worker_manager.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "scripted_worker.hpp"

namespace respawn {
namespace {

using std::chrono::milliseconds;
using test::ScriptedWorker;
using test::ScriptedWorkers;
constexpr std::uint64_t kMiB = 1024 * 1024;

// What became of one job: its outcome once `done` was called (exactly once), and its text.
struct Record {
  int done_calls = 0;
  std::optional<JobOutcome> outcome;
  std::string streamed;
  nlohmann::json logprobs = nlohmann::json::array();  // every streamed entry, in order
  bool ok() const { return outcome && outcome->ok(); }
  ErrorKind kind() const { return outcome->error().kind; }
  std::string message() const { return outcome->error().message; }
};

struct Fixture {
  boost::asio::io_context io;
  ServeOptions options;
  Metrics metrics;
  ScriptedWorkers workers;
  std::shared_ptr<WorkerManager> manager;
  int idle_calls = 0;
  std::vector<Job> requeued;  // in the order requeue_front was called
  std::vector<Error> failed_queued;
  std::uint64_t next_job_id = 1;

  explicit Fixture(Policy policy = {}) {
    options.worker_bin = "/opt/respawn/bin/respawn-worker";
    options.model = "/models/m.pt";
    manager = std::make_shared<WorkerManager>(io, options, policy, metrics, workers.factory());
    manager->set_hooks({[this] { ++idle_calls; },
                        [this](Job job) { requeued.push_back(std::move(job)); },
                        [this](const Error& error) { failed_queued.push_back(error); }});
  }
  ~Fixture() {
    // The manager's timers go first, then whatever handlers were left.
    manager.reset();
    io.poll();
  }

  ScriptedWorker& start_ready(nlohmann::json info = {{"device", "cpu"}, {"task", "generate"}}) {
    manager->start();
    auto& worker = workers.last();  // becoming ready may start a spare behind it
    worker.become_ready(std::move(info));
    return worker;
  }
  Job job(Record& record, std::string json = R"({"prompt":"x"})") {
    Job j;
    j.id = next_job_id++;
    j.type = ipc::MessageType::generate;
    j.json = std::move(json);
    j.done = [&record](JobOutcome outcome) {
      ++record.done_calls;
      record.outcome = std::move(outcome);
    };
    j.on_text = [&record](std::string_view text, const nlohmann::json& logprobs) {
      record.streamed += text;
      for (const auto& entry : logprobs) record.logprobs.push_back(entry);
    };
    return j;
  }
  // Runs the job if the manager says it may; returns the IPC request id it was sent as.
  std::uint64_t run(Job j) {
    EXPECT_TRUE(manager->can_run(j));
    manager->run(std::move(j));
    return current().last_sent();
  }
  // Runs a fresh job: its job id (as the scheduler knows it) and the IPC request id it went as.
  struct Sent {
    std::uint64_t job_id;
    std::uint64_t request_id;
  };
  Sent run_tracked(Record& record) {
    Job j = job(record);
    const auto job_id = j.id;
    return {job_id, run(std::move(j))};
  }
  // A ready worker that ran one job and answered it with `error`.
  ScriptedWorker& answered_with(Record& record, const WorkerError& error) {
    auto& worker = start_ready();
    worker.answer_error(run(job(record)), error);
    return worker;
  }
  ScriptedWorker& current() {
    for (auto& w : workers.made) {
      if (w->pid() == manager->current_pid()) return *w;
    }
    throw std::logic_error("no current worker");
  }
  std::string metrics_text() { return metrics.render(); }
};

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(WorkerManager, StartsOneWorkerWithTheLaunchTheOptionsAndPolicyDescribe) {
  Fixture f(test::policy_with({{&Policy::load_timeout_ms, 4321}}));
  f.manager->start();
  ASSERT_EQ(f.workers.made.size(), 1u);
  const auto& launch = f.workers.last().launch;
  EXPECT_EQ(launch.exe, "/opt/respawn/bin/respawn-worker");
  EXPECT_EQ(launch.load_timeout, milliseconds(4321));
  const auto model = std::find(launch.args.begin(), launch.args.end(), "--model");
  ASSERT_NE(model, launch.args.end());
  EXPECT_EQ(*std::next(model), "/models/m.pt");
  ASSERT_FALSE(f.workers.last().configured.empty());
  EXPECT_EQ(f.workers.last().configured.front()["max_batch_size"],
            f.manager->policy().max_batch_size);
  EXPECT_EQ(f.manager->workers_started(), 1u);
}

TEST(WorkerManager, NothingRunsUntilTheWorkerIsReady) {
  Fixture f;
  f.manager->start();
  Record r;
  const Job j = f.job(r);
  EXPECT_FALSE(f.manager->ready());
  EXPECT_FALSE(f.manager->can_run(j));
  auto admit = f.manager->admission(j);
  ASSERT_TRUE(admit.ok());
  EXPECT_EQ(*admit, WorkerManager::Admit::later);
  EXPECT_EQ(f.manager->current_pid(), 1001);

  f.workers.last().become_ready();
  EXPECT_TRUE(f.manager->ready());
  EXPECT_GE(f.idle_calls, 1) << "a ready worker asks the scheduler for work";
  admit = f.manager->admission(j);
  ASSERT_TRUE(admit.ok());
  EXPECT_EQ(*admit, WorkerManager::Admit::now);
}

TEST(WorkerManager, TheAnswerGoesToItsJobAndTheWorkerTakesTheNext) {
  Fixture f;
  auto& w = f.start_ready();
  Record r;
  const auto id = f.run(f.job(r));
  EXPECT_TRUE(f.manager->busy());
  const int idle_before = f.idle_calls;
  w.answer(id, R"({"text":"hello"})");
  ASSERT_EQ(r.done_calls, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r.outcome)->json, R"({"text":"hello"})");
  EXPECT_FALSE(f.manager->busy());
  EXPECT_EQ(f.idle_calls, idle_before + 1);
}

TEST(WorkerManager, UpToMaxBatchSizeJobsAreInFlightAtOnce) {
  Fixture f(test::policy_with({{&Policy::max_batch_size, 2}}));
  auto& w = f.start_ready();
  Record a, b, c;
  const auto first = f.run(f.job(a));
  f.run(f.job(b));
  EXPECT_EQ(f.manager->in_flight(), 2u);
  EXPECT_FALSE(f.manager->can_run(f.job(c)));
  w.answer(first);
  EXPECT_TRUE(f.manager->can_run(f.job(c)));
}

TEST(WorkerManager, MaxRequestsRetiresTheWorkerAfterItsLastAnswerAndStartsTheNextOnceItExited) {
  Fixture f(test::policy_with({{&Policy::max_requests, 2}}));
  auto& w = f.start_ready();
  Record a, b, c;
  const auto first = f.run(f.job(a));
  const auto second = f.run(f.job(b));
  EXPECT_FALSE(f.manager->can_run(f.job(c))) << "its last requests are in flight";
  w.answer(first);
  EXPECT_FALSE(w.drained) << "retired only once nothing is in flight";
  w.answer(second);
  ASSERT_TRUE(w.drained);
  EXPECT_EQ(*w.drained, RecycleReason::max_requests);
  EXPECT_EQ(f.workers.made.size(), 1u) << "the next waits for the old one's memory";
  w.reap();
  ASSERT_EQ(f.workers.made.size(), 2u);
  EXPECT_EQ(f.manager->last_recycle_reason(), RecycleReason::max_requests);
  EXPECT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(
      has_line(f.metrics_text(), R"(respawn_worker_recycles_total{reason="max_requests"} 1)"))
      << f.metrics_text();
}

TEST(WorkerManager, ACrashPutsTheRequestsInFlightBackOldestFirstAsReplays) {
  Fixture f;
  auto& w = f.start_ready();
  Record a, b;
  f.run(f.job(a, R"({"prompt":"a"})"));
  f.run(f.job(b, R"({"prompt":"b"})"));
  w.reap(RecycleReason::crash);
  // Each goes to the head of the queue, newest first, so the oldest ends up in front.
  ASSERT_EQ(f.requeued.size(), 2u);
  EXPECT_EQ(f.requeued[0].json, R"({"prompt":"b"})");
  EXPECT_EQ(f.requeued[1].json, R"({"prompt":"a"})");
  for (const auto& job : f.requeued) {
    EXPECT_EQ(job.failures, 1u);
    EXPECT_EQ(job.replays, 1u);
  }
  EXPECT_EQ(a.done_calls + b.done_calls, 0);
  EXPECT_EQ(f.manager->last_recycle_reason(), RecycleReason::crash);
  EXPECT_EQ(f.manager->current_pid(), 0);
  f.io.poll();  // the restart (no backoff: the worker had been ready)
  EXPECT_EQ(f.workers.made.size(), 2u);
}

TEST(WorkerManager, AReplayRunsAloneOnTheFreshWorker) {
  Fixture f;
  auto& first = f.start_ready();
  Record a, b;
  f.run(f.job(a));
  first.reap(RecycleReason::crash);
  f.io.poll();
  auto& second = f.workers.last();
  second.become_ready();
  Job replay = std::move(f.requeued.at(0));
  f.run(std::move(replay));
  EXPECT_FALSE(f.manager->can_run(f.job(b))) << "nothing joins a replay";
  second.answer(second.last_sent());
  EXPECT_TRUE(a.ok());
  EXPECT_TRUE(f.manager->can_run(f.job(b)));
}

TEST(WorkerManager, ARequestPastTheReplayLimitFailsWithTheReason) {
  Fixture f(test::policy_with({{&Policy::replay_limit, 0}}));
  auto& w = f.start_ready();
  Record a;
  f.run(f.job(a));
  w.reap(RecycleReason::crash);
  ASSERT_EQ(a.done_calls, 1);
  EXPECT_EQ(a.kind(), ErrorKind::worker_failed);
  EXPECT_NE(a.message().find("(crash)"), std::string::npos) << a.message();
  EXPECT_TRUE(f.requeued.empty());
}

TEST(WorkerManager, ARequestThatCrashesWorkersAloneIsQuarantinedAndItsTwinRefused) {
  Fixture f(test::policy_with({{&Policy::poison_threshold, 1}}));
  auto& w = f.start_ready();
  Record a, twin, other;
  f.run(f.job(a, R"({"prompt":"poison"})"));
  w.reap(RecycleReason::crash, "died of signal 11 (Segmentation fault)");
  ASSERT_EQ(a.done_calls, 1);
  EXPECT_EQ(a.kind(), ErrorKind::worker_failed);
  EXPECT_NE(a.message().find("quarantined as poison"), std::string::npos) << a.message();
  EXPECT_NE(a.message().find("Segmentation fault"), std::string::npos) << a.message();
  EXPECT_EQ(f.manager->quarantine_size(), 1u);

  const auto refused = f.manager->admission(f.job(twin, R"({"prompt":"poison"})"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::worker_failed);
  EXPECT_TRUE(f.manager->admission(f.job(other, R"({"prompt":"fine"})")).ok());
  EXPECT_TRUE(has_line(f.metrics_text(), "respawn_quarantine_refusals_total 1"))
      << f.metrics_text();
  EXPECT_EQ(f.manager->clear_quarantine(""), 1u);
  EXPECT_TRUE(f.manager->admission(f.job(twin, R"({"prompt":"poison"})")).ok());
}

TEST(WorkerManager, ACrashWithoutEvidenceIsNoGroundForQuarantine) {
  Fixture f(test::policy_with({{&Policy::poison_threshold, 1}}));
  auto& w = f.start_ready();
  Record a;
  f.run(f.job(a));
  w.reap(RecycleReason::crash);  // e.g. SIGKILL from outside: no evidence against the request
  EXPECT_EQ(a.done_calls, 0);
  ASSERT_EQ(f.requeued.size(), 1u);
  EXPECT_EQ(f.manager->quarantine_size(), 0u);
}

TEST(WorkerManager, AnOperatorsImmediateRecyclePutsTheRequestsBackUncharged) {
  Fixture f;
  auto& w = f.start_ready();
  Record a;
  f.run(f.job(a));
  f.manager->recycle(true);
  ASSERT_TRUE(w.killed);
  EXPECT_EQ(*w.killed, RecycleReason::by_operator);
  w.reap();
  ASSERT_EQ(f.requeued.size(), 1u);
  EXPECT_EQ(f.requeued[0].failures, 0u);
  EXPECT_EQ(f.requeued[0].replays, 0u);
  EXPECT_EQ(f.workers.made.size(), 2u) << "the next starts at once, without a backoff";
  EXPECT_EQ(f.manager->last_recycle_reason(), RecycleReason::by_operator);
}

TEST(WorkerManager, AGracefulOperatorRecycleWaitsForTheRequestInFlight) {
  Fixture f;
  auto& w = f.start_ready();
  Record a, b;
  const auto id = f.run(f.job(a));
  f.manager->recycle(false);
  EXPECT_FALSE(w.drained);
  EXPECT_FALSE(w.killed);
  EXPECT_FALSE(f.manager->can_run(f.job(b))) << "a worker due for a recycle gets no new job";
  w.answer(id);
  EXPECT_TRUE(a.ok());
  ASSERT_TRUE(w.drained);
  EXPECT_EQ(*w.drained, RecycleReason::by_operator);
}

TEST(WorkerManager, TheServersDeadlineKillsTheWorkerAndPutsTheOthersBackUncharged) {
  Fixture f;
  auto& w = f.start_ready();
  Record late, other;
  const auto late_id = f.run_tracked(late).job_id;
  f.run(f.job(other));
  EXPECT_FALSE(
      f.manager->expire(late_id, make_error(ErrorKind::timeout, "request_timeout_ms"), true));
  ASSERT_EQ(late.done_calls, 1);
  EXPECT_EQ(late.kind(), ErrorKind::timeout);
  ASSERT_TRUE(w.killed);
  EXPECT_EQ(*w.killed, RecycleReason::timeout);
  w.reap();
  ASSERT_EQ(f.requeued.size(), 1u);
  EXPECT_EQ(f.requeued[0].failures, 0u);
  EXPECT_EQ(late.done_calls, 1);
  EXPECT_EQ(f.manager->last_recycle_reason(), RecycleReason::timeout);
}

TEST(WorkerManager, AClientsDeadlineStopsItsRequestButNotTheWorker) {
  Fixture f;
  auto& w = f.start_ready();
  Record r;
  const auto [job_id, sent_as] = f.run_tracked(r);
  EXPECT_TRUE(f.manager->expire(job_id, make_error(ErrorKind::timeout, "its deadline"), false));
  EXPECT_EQ(r.done_calls, 1);
  EXPECT_EQ(w.cancelled, std::vector<std::uint64_t>{sent_as});
  EXPECT_FALSE(w.killed);
  EXPECT_TRUE(f.manager->busy()) << "it keeps its slot until the worker answers";
  w.answer(sent_as);
  EXPECT_EQ(r.done_calls, 1) << "the late answer goes nowhere";
  EXPECT_FALSE(f.manager->busy());
}

TEST(WorkerManager, CancelAsksTheWorkerToStopOnlyAJobInFlight) {
  Fixture f;
  auto& w = f.start_ready();
  Record r;
  const auto [job_id, sent_as] = f.run_tracked(r);
  EXPECT_FALSE(f.manager->cancel(job_id + 100));
  EXPECT_TRUE(f.manager->cancel(job_id));
  EXPECT_EQ(w.cancelled, std::vector<std::uint64_t>{sent_as});
}

TEST(WorkerManager, AHealthyErrorAnswersTheJobAndKeepsTheWorker) {
  Fixture f;
  Record r;
  auto& w = f.answered_with(r, {WorkerErrorKind::bad_input, "wrong shape", true});
  ASSERT_EQ(r.done_calls, 1);
  EXPECT_EQ(r.kind(), ErrorKind::bad_input);
  EXPECT_FALSE(w.killed);
  EXPECT_TRUE(f.manager->ready());
}

TEST(WorkerManager, AnUnhealthyCudaErrorReplacesTheWorkerAndReplaysTheRequest) {
  Fixture f;
  Record r;
  auto& w = f.answered_with(r, {WorkerErrorKind::cuda_error, "an illegal memory access", false});
  ASSERT_TRUE(w.killed);
  EXPECT_EQ(*w.killed, RecycleReason::cuda_error);
  EXPECT_EQ(r.done_calls, 0);
  ASSERT_EQ(f.requeued.size(), 1u);
  EXPECT_EQ(f.requeued[0].failures, 1u);
  w.reap();
  EXPECT_EQ(f.manager->last_recycle_reason(), RecycleReason::cuda_error);
}

TEST(WorkerManager, WorkersThatNeverBecomeReadyOpenTheBreakerWhichFailsTheQueue) {
  Fixture f(test::policy_with({{&Policy::crash_loop_failures, 2},
                               {&Policy::restart_backoff_ms, 1},
                               {&Policy::restart_backoff_max_ms, 1}}));
  f.manager->start();
  f.workers.last().reap(RecycleReason::crash);  // before ready: a load failure
  EXPECT_EQ(f.manager->last_recycle_reason(), RecycleReason::load_failure);
  EXPECT_EQ(f.manager->breaker_state(), CircuitBreaker::State::closed);
  EXPECT_EQ(f.workers.made.size(), 1u) << "the next waits for its backoff";
  f.io.run_for(milliseconds(200));
  ASSERT_EQ(f.workers.made.size(), 2u);
  f.workers.last().reap(RecycleReason::crash);
  EXPECT_EQ(f.manager->breaker_state(), CircuitBreaker::State::open);
  ASSERT_EQ(f.failed_queued.size(), 1u);
  EXPECT_EQ(f.failed_queued[0].kind, ErrorKind::unavailable);
  EXPECT_GE(f.failed_queued[0].retry_after_s, 1u);
  Record r;
  const auto refused = f.manager->admission(f.job(r));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::unavailable);
  EXPECT_FALSE(f.manager->ready());
  EXPECT_EQ(f.manager->status()["breaker"]["state"], "open");
}

TEST(WorkerManager, AWorkerThatCannotBeStartedCountsAsALoadFailureAndIsRetried) {
  Fixture f(
      test::policy_with({{&Policy::restart_backoff_ms, 1}, {&Policy::restart_backoff_max_ms, 1}}));
  f.workers.fail = true;
  f.manager->start();
  EXPECT_EQ(f.workers.failed_starts, 1);
  EXPECT_EQ(f.manager->last_recycle_reason(), RecycleReason::load_failure);
  f.workers.fail = false;
  f.io.run_for(milliseconds(200));
  ASSERT_EQ(f.workers.made.size(), 1u);
  f.workers.last().become_ready();
  EXPECT_TRUE(f.manager->ready());
}

TEST(WorkerManager, TheHotSpareTakesOverAtAPlannedRecycle) {
  Policy policy;
  policy.prestart_spare = true;
  policy.max_requests = 1;
  Fixture f(policy);
  auto& first = f.start_ready();
  ASSERT_EQ(f.workers.made.size(), 2u) << "the spare loads as soon as the worker serves";
  auto& spare = *f.workers.made[1];
  spare.become_ready();
  EXPECT_EQ(f.manager->current_pid(), first.pid()) << "a spare waits its turn";
  Record r;
  const auto id = f.run(f.job(r));
  first.answer(id);
  ASSERT_TRUE(first.drained);
  EXPECT_EQ(*first.drained, RecycleReason::max_requests);
  EXPECT_EQ(f.manager->current_pid(), spare.pid());
  EXPECT_TRUE(f.manager->ready());
  EXPECT_EQ(f.workers.made.size(), 3u) << "and a new spare loads behind it";
}

// A recycle due while requests run hands over to a ready spare at once: new jobs go to the spare,
// and the retiring worker's answers still complete the jobs it runs.
Policy with_spare_and_max_requests_2() {
  Policy policy = test::policy_with({{&Policy::max_requests, 2}});
  policy.prestart_spare = true;
  return policy;
}

struct HandOver {
  Fixture f{with_spare_and_max_requests_2()};
  ScriptedWorker* first = nullptr;
  ScriptedWorker* spare = nullptr;
  Record a, b, c;
  std::uint64_t b_id = 0;

  HandOver() {
    first = &f.start_ready();
    spare = f.workers.made.at(1).get();
    spare->become_ready();
    const auto a_id = f.run(f.job(a));
    b_id = f.run(f.job(b));
    first->answer(a_id);  // the limit is reached with b still running
  }
};

TEST(WorkerManager, APlannedRecycleHandsOverToAReadySpareWhileTheOldWorkerFinishes) {
  HandOver h;
  ASSERT_TRUE(h.first->drained) << "retired at once, b still in flight";
  EXPECT_EQ(*h.first->drained, RecycleReason::max_requests);
  EXPECT_EQ(h.f.manager->current_pid(), h.spare->pid());
  const auto c_id = h.f.run(h.f.job(h.c));  // the new job goes to the spare
  EXPECT_EQ(h.spare->last_sent(), c_id);
  h.first->answer(h.b_id);
  EXPECT_TRUE(h.b.ok()) << "the retiring worker's answer completes its job";
  h.spare->answer(c_id);
  EXPECT_TRUE(h.c.ok());
  h.first->reap();
  EXPECT_TRUE(h.f.requeued.empty());
  EXPECT_EQ(h.b.done_calls, 1);
}

TEST(WorkerManager, ARetiringWorkerThatDiesHasItsRequestsReplayed) {
  HandOver h;
  ASSERT_TRUE(h.first->drained);
  h.first->reap(RecycleReason::crash);
  ASSERT_EQ(h.f.requeued.size(), 1u);
  EXPECT_EQ(h.f.requeued[0].failures, 1u);
  EXPECT_EQ(h.f.requeued[0].replays, 1u);
  EXPECT_EQ(h.b.done_calls, 0);
  EXPECT_EQ(h.f.manager->current_pid(), h.spare->pid()) << "the current worker is not touched";
}

TEST(WorkerManager, AMemoryLimitRecyclesRightAfterARequestOnly) {
  Fixture f(test::policy_with({{&Policy::max_worker_rss_mb, 100}}));
  auto& w = f.start_ready();
  w.rss = 300 * kMiB;
  f.io.run_for(milliseconds(1100));  // housekeeping: idle workers are not judged by memory
  EXPECT_FALSE(w.drained);
  Record r;
  w.answer(f.run(f.job(r)));
  ASSERT_TRUE(w.drained);
  EXPECT_EQ(*w.drained, RecycleReason::memory);
  EXPECT_EQ(f.manager->current_memory().rss_bytes, 0u) << "no current worker now";
}

TEST(WorkerManager, TheMemoryBudgetRefusesARequestThatCanNeverFit) {
  Fixture f(test::policy_with({{&Policy::max_worker_rss_mb, 100}}));
  auto& w = f.start_ready({{"device", "cpu"}, {"task", "tensor"}, {"rss_bytes", 10 * kMiB}});
  w.rss = 10 * kMiB;
  EXPECT_EQ(f.manager->current_memory().rss_bytes, 10 * kMiB);
  Record small, huge;
  Job big = f.job(huge);
  big.weight = 200 * kMiB;  // a tensor request costs at least its bytes
  const auto refused = f.manager->admission(big);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::too_large);
  Job fits = f.job(small);
  fits.weight = 1 * kMiB;
  EXPECT_TRUE(f.manager->admission(fits).ok());
}

TEST(WorkerManager, StopKillsABusyWorkerAnswers503AndReportsOnceAllAreReaped) {
  Fixture f;
  auto& w = f.start_ready();
  Record r;
  f.run(f.job(r));
  int stopped = 0;
  f.manager->stop([&] { ++stopped; });
  ASSERT_TRUE(w.killed);
  EXPECT_EQ(*w.killed, RecycleReason::shutdown);
  EXPECT_EQ(stopped, 0);
  w.reap();
  EXPECT_EQ(stopped, 1);
  ASSERT_EQ(r.done_calls, 1);
  EXPECT_EQ(r.kind(), ErrorKind::unavailable);
  EXPECT_TRUE(f.requeued.empty());
  EXPECT_EQ(f.workers.made.size(), 1u) << "no new worker while stopping";
}

TEST(WorkerManager, StopDrainsAnIdleWorker) {
  Fixture f;
  auto& w = f.start_ready();
  int stopped = 0;
  f.manager->stop([&] { ++stopped; });
  ASSERT_TRUE(w.drained);
  EXPECT_EQ(*w.drained, RecycleReason::shutdown);
  EXPECT_FALSE(w.killed);
  w.reap();
  EXPECT_EQ(stopped, 1);
}

TEST(WorkerManager, APolicyChangeReachesTheWorkersAndALowerLimitAppliesAtOnce) {
  Fixture f;
  auto& w = f.start_ready();
  Record r;
  w.answer(f.run(f.job(r)));
  const auto configured = w.configured.size();
  Policy lower = f.manager->policy();
  lower.max_requests = 1;
  lower.max_batch_size = 3;
  f.manager->set_policy(lower);
  ASSERT_GT(w.configured.size(), configured);
  EXPECT_EQ(w.configured.back()["max_batch_size"], 3);
  ASSERT_TRUE(w.drained) << "it has served its new limit already";
  EXPECT_EQ(*w.drained, RecycleReason::max_requests);
}

TEST(WorkerManager, AGenerationsTokensBatchAndTimesReachTheMetrics) {
  Fixture f;
  auto& w = f.start_ready();
  Record r;
  const auto id = f.run(f.job(r));
  w.stream(id, "");  // a token whose text is not final yet
  w.stream(id, "ab");
  w.answer(id, R"({"text_output":"ab","prompt_tokens":5,"completion_tokens":3,"batch_size":2})");
  const auto text = f.metrics_text();
  EXPECT_TRUE(has_line(text, "respawn_prompt_tokens_total 5")) << text;
  EXPECT_TRUE(has_line(text, "respawn_generation_tokens_total 3")) << text;
  EXPECT_TRUE(has_line(text, "respawn_time_to_first_token_seconds_count 1")) << text;
  EXPECT_TRUE(has_line(text, "respawn_time_per_output_token_seconds_count 1")) << text;
  EXPECT_TRUE(has_line(text, R"(respawn_batch_size_bucket{le="1"} 0)")) << text;
  EXPECT_TRUE(has_line(text, R"(respawn_batch_size_bucket{le="2"} 1)")) << text;
}

TEST(WorkerManager, AnInferCountsItsBatchButNoTokens) {
  Fixture f;
  auto& w = f.start_ready({{"device", "cpu"}, {"task", "tensor"}});
  Record r;
  Job j = f.job(r, R"({"inputs":[]})");
  j.type = ipc::MessageType::infer;
  w.answer(f.run(std::move(j)), R"({"outputs":[],"batch_size":3})");
  const auto text = f.metrics_text();
  EXPECT_TRUE(has_line(text, R"(respawn_batch_size_bucket{le="4"} 1)")) << text;
  EXPECT_TRUE(has_line(text, "respawn_generation_tokens_total 0")) << text;
  EXPECT_TRUE(has_line(text, "respawn_time_to_first_token_seconds_count 0")) << text;
}

// Text that reached the client cannot be taken back, so a streamed request is not replayed; a
// token whose text is not final yet sent nothing, so it does not count.
TEST(WorkerManager, OnlyTextThatReachedTheClientStopsAReplay) {
  for (const std::vector<std::string>& tokens :
       {std::vector<std::string>{"", ""}, std::vector<std::string>{"Hel", "", "lo"}}) {
    Fixture f;
    auto& w = f.start_ready();
    Record r;
    const auto id = f.run(f.job(r));
    std::string sent;
    for (const auto& text : tokens) {
      w.stream(id, text);
      sent += text;
    }
    EXPECT_EQ(r.streamed, sent);
    w.reap(RecycleReason::crash);
    if (sent.empty()) {
      EXPECT_EQ(r.done_calls, 0);
      EXPECT_EQ(f.requeued.size(), 1u) << "nothing reached the client: it may run again";
    } else {
      ASSERT_EQ(r.done_calls, 1);
      EXPECT_EQ(r.kind(), ErrorKind::worker_failed);
      EXPECT_TRUE(f.requeued.empty());
    }
  }
}

// Logprobs reach the client with the tokens, even on a step whose text is held back; then the
// request has sent something and is not replayed.
TEST(WorkerManager, StreamedLogprobsReachTheClientEvenWithoutText) {
  Fixture f;
  auto& w = f.start_ready();
  Record r;
  const auto id = f.run(f.job(r));
  w.stream(id, "", nlohmann::json::parse("[[226, -0.5, []]]"));  // half a character
  w.stream(id, "\xE2\x82\xAC", nlohmann::json::parse("[[130, -0.25, []]]"));
  EXPECT_EQ(r.streamed, "\xE2\x82\xAC");
  EXPECT_EQ(r.logprobs, nlohmann::json::parse("[[226, -0.5, []], [130, -0.25, []]]"));
  w.reap(RecycleReason::crash);
  ASSERT_EQ(r.done_calls, 1);
  EXPECT_TRUE(f.requeued.empty());
}

}  // namespace
}  // namespace respawn
