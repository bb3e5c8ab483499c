// Tests for the Scheduler (supervisor/scheduling/scheduler.hpp) with a WorkerManager that is never
// started: what happens to queued jobs without a worker.
#include "scheduling/scheduler.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <map>
#include <string>

#include "scripted_worker.hpp"

namespace respawn {
namespace {

struct Fixture {
  boost::asio::io_context io;
  ServeOptions options;
  Metrics metrics;
  std::shared_ptr<WorkerManager> manager =
      std::make_shared<WorkerManager>(io, options, Policy{}, metrics);
  Scheduler scheduler{io, 8, manager, metrics};
};

// Found by fuzz_http: the drain timer failed the queued jobs, whose answers already posted the
// drained callback, and then posted an empty std::function, which threw out of io.run().
TEST(Scheduler, ADrainThatTimesOutWithQueuedJobsCallsDrainedOnce) {
  Fixture f;
  std::vector<int> statuses;
  Job job;
  job.type = ipc::MessageType::generate;
  job.json = R"({"prompt":"x"})";
  job.done = [&](JobOutcome outcome) {
    ASSERT_FALSE(outcome.ok());
    statuses.push_back(static_cast<int>(outcome.error().kind));
  };
  ASSERT_TRUE(f.scheduler.submit(std::move(job)).ok());
  int drained = 0;
  f.scheduler.drain(std::chrono::milliseconds(0), [&] { ++drained; });
  EXPECT_NO_THROW(f.io.run());
  EXPECT_EQ(drained, 1);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0], static_cast<int>(ErrorKind::unavailable));
  EXPECT_EQ(f.scheduler.queued(), 0u);
}

TEST(Scheduler, ADrainWithNothingQueuedIsImmediate) {
  Fixture f;
  int drained = 0;
  f.scheduler.drain(std::chrono::seconds(60), [&] { ++drained; });
  f.io.poll();  // at once, not when the 60 s timer fires
  EXPECT_EQ(drained, 1);
}

// --- with scripted workers ---

using std::chrono::milliseconds;

struct Fed {
  boost::asio::io_context io;
  ServeOptions options;
  Metrics metrics;
  test::ScriptedWorkers workers;
  std::shared_ptr<WorkerManager> manager;
  std::unique_ptr<Scheduler> scheduler;
  std::map<std::string, JobOutcome> outcomes;  // by job name

  explicit Fed(Policy policy = {}, std::size_t max_queue = 8) {
    manager = std::make_shared<WorkerManager>(io, options, policy, metrics, workers.factory());
    scheduler = std::make_unique<Scheduler>(io, max_queue, manager, metrics);
    manager->start();
    workers.last().become_ready();
  }
  ~Fed() {
    scheduler.reset();
    manager.reset();
    io.poll();
  }
  test::ScriptedWorker& worker() { return workers.last(); }
  // A job whose payload is its name.
  Result<std::uint64_t> submit(const std::string& name, int priority = 0,
                               std::optional<milliseconds> timeout = std::nullopt) {
    Job job;
    job.type = ipc::MessageType::generate;
    job.json = name;
    job.priority = priority;
    job.timeout = timeout;
    job.done = [this, name](JobOutcome outcome) { outcomes.emplace(name, std::move(outcome)); };
    return scheduler->submit(std::move(job));
  }
  // The names of the jobs every worker was sent, in order.
  std::vector<std::string> ran() const {
    std::vector<std::string> names;
    for (const auto& w : workers.made) {
      names.insert(names.end(), w->sent_payloads.begin(), w->sent_payloads.end());
    }
    return names;
  }
  // Answers the oldest request still in flight at the current worker.
  void answer_oldest() {
    auto& w = worker();
    ASSERT_FALSE(w.in_flight_ids().empty()) << "nothing in flight to answer";
    w.answer(w.in_flight_ids().front());
  }
};

TEST(Scheduler, AJobRunsAtOnceWhenTheWorkerHasRoom) {
  Fed f;
  ASSERT_TRUE(f.submit("a").ok());
  EXPECT_EQ(f.scheduler->queued(), 0u);
  EXPECT_EQ(f.ran(), std::vector<std::string>{"a"});
  f.answer_oldest();
  ASSERT_EQ(f.outcomes.count("a"), 1u);
  EXPECT_TRUE(f.outcomes.at("a").ok());
}

TEST(Scheduler, QueuedJobsGoHighestPriorityFirstThenInArrivalOrder) {
  Fed f(test::policy_with({{&Policy::max_batch_size, 1}}));
  ASSERT_TRUE(f.submit("first").ok());
  ASSERT_TRUE(f.submit("low", 0).ok());
  ASSERT_TRUE(f.submit("hi1", 5).ok());
  ASSERT_TRUE(f.submit("hi2", 5).ok());
  EXPECT_EQ(f.scheduler->queued(), 3u);
  for (int i = 0; i < 4; ++i) f.answer_oldest();
  EXPECT_EQ(f.ran(), (std::vector<std::string>{"first", "hi1", "hi2", "low"}));
  EXPECT_EQ(f.outcomes.size(), 4u);
}

TEST(Scheduler, AFullQueueRefusesWith503AndKeepsWhatItHas) {
  Fed f(test::policy_with({{&Policy::max_batch_size, 1}}), 2);
  ASSERT_TRUE(f.submit("run").ok());
  ASSERT_TRUE(f.submit("q1").ok());
  ASSERT_TRUE(f.submit("q2").ok());
  const auto refused = f.submit("q3");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::unavailable);
  EXPECT_NE(refused.error().message.find("queue is full"), std::string::npos);
  EXPECT_EQ(f.scheduler->queued(), 2u);
  EXPECT_EQ(f.outcomes.count("q3"), 0u) << "a refused job's done is never called";
}

TEST(Scheduler, AQueuedJobPastItsDeadlineGets504AndNeverRuns) {
  Fed f(test::policy_with({{&Policy::max_batch_size, 1}}));
  ASSERT_TRUE(f.submit("run").ok());
  ASSERT_TRUE(f.submit("late", 0, milliseconds(20)).ok());
  f.io.run_for(milliseconds(100));
  ASSERT_EQ(f.outcomes.count("late"), 1u);
  ASSERT_FALSE(f.outcomes.at("late").ok());
  EXPECT_EQ(f.outcomes.at("late").error().kind, ErrorKind::timeout);
  EXPECT_NE(f.outcomes.at("late").error().message.find("waited in the queue"), std::string::npos);
  EXPECT_EQ(f.scheduler->queued(), 0u);
  f.answer_oldest();
  EXPECT_EQ(f.ran(), std::vector<std::string>{"run"});
}

TEST(Scheduler, TheServersDeadlineOnARunningJobReplacesTheWorker) {
  Fed f(test::policy_with({{&Policy::request_timeout_ms, 20}}));
  ASSERT_TRUE(f.submit("stuck").ok());
  f.io.run_for(milliseconds(100));
  ASSERT_EQ(f.outcomes.count("stuck"), 1u);
  EXPECT_EQ(f.outcomes.at("stuck").error().kind, ErrorKind::timeout);
  ASSERT_TRUE(f.worker().killed);
  EXPECT_EQ(*f.worker().killed, RecycleReason::timeout);
}

TEST(Scheduler, CancelDropsAQueuedJobAndStopsARunningOne) {
  Fed f(test::policy_with({{&Policy::max_batch_size, 1}}));
  const auto running = f.submit("run");
  const auto queued = f.submit("queued");
  ASSERT_TRUE(running.ok() && queued.ok());
  f.scheduler->cancel(*queued);
  ASSERT_EQ(f.outcomes.count("queued"), 1u);
  EXPECT_EQ(f.outcomes.at("queued").error().kind, ErrorKind::cancelled);
  EXPECT_EQ(f.scheduler->queued(), 0u);
  f.scheduler->cancel(*running);
  EXPECT_EQ(f.worker().cancelled, std::vector<std::uint64_t>{f.worker().sent.at(0)});
  EXPECT_EQ(f.outcomes.count("run"), 0u) << "answered when the worker stops it";
}

TEST(Scheduler, AReplayRunsBeforeTheJobsThatWaitedAndAlone) {
  Fed f(test::policy_with({{&Policy::max_batch_size, 1}}));
  ASSERT_TRUE(f.submit("victim").ok());
  ASSERT_TRUE(f.submit("waiting").ok());
  f.worker().reap(RecycleReason::crash);
  EXPECT_EQ(f.scheduler->queued(), 2u);
  f.io.poll();  // the restart
  ASSERT_EQ(f.workers.made.size(), 2u);
  f.worker().become_ready();
  EXPECT_EQ(f.ran().back(), "victim");
  EXPECT_EQ(f.worker().sent.size(), 1u) << "the replay runs alone";
  f.answer_oldest();
  EXPECT_EQ(f.ran().back(), "waiting");
}

TEST(Scheduler, ADrainWaitsForTheJobsInFlightAndQueued) {
  Fed f(test::policy_with({{&Policy::max_batch_size, 1}}));
  ASSERT_TRUE(f.submit("a").ok());
  ASSERT_TRUE(f.submit("b").ok());
  int drained = 0;
  f.scheduler->drain(std::chrono::seconds(60), [&] { ++drained; });
  const auto refused = f.submit("c");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::unavailable);
  f.answer_oldest();
  f.io.poll();
  EXPECT_EQ(drained, 0);
  f.answer_oldest();
  f.io.poll();
  EXPECT_EQ(drained, 1);
  EXPECT_TRUE(f.outcomes.at("a").ok() && f.outcomes.at("b").ok());
}

}  // namespace
}  // namespace respawn
