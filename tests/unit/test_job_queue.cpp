// Tests for the bounded job FIFO (supervisor/scheduling/job_queue.hpp).
#include "scheduling/job_queue.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace respawn {
namespace {

// Records every call of a job's done callback.
struct DoneLog {
  struct Call {
    std::string job;
    bool ok;
    ErrorKind kind;
    std::string message;
  };
  std::vector<Call> calls;

  Job make(const std::string& name) {
    Job job;
    job.json = name;
    job.done = [this, name](JobOutcome outcome) {
      calls.push_back({name, outcome.ok(),
                       outcome.ok() ? ErrorKind::internal : outcome.error().kind,
                       outcome.ok() ? "" : outcome.error().message});
    };
    return job;
  }
};

TEST(JobQueue, StartsEmpty) {
  JobQueue q(3);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.capacity(), 3u);
  EXPECT_FALSE(q.pop().has_value());
}

TEST(JobQueue, PopsInFifoOrder) {
  DoneLog log;
  JobQueue q(10);
  for (const char* name : {"a", "b", "c", "d"}) EXPECT_FALSE(q.push(log.make(name)).has_value());
  EXPECT_EQ(q.size(), 4u);
  for (const char* name : {"a", "b"}) {
    auto job = q.pop();
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ(job->json, name);
  }
  // Interleaved pushes go to the back.
  EXPECT_FALSE(q.push(log.make("e")).has_value());
  for (const char* name : {"c", "d", "e"}) {
    auto job = q.pop();
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ(job->json, name);
  }
  EXPECT_FALSE(q.pop().has_value());
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(log.calls.empty());  // the queue never answers a job by itself
}

TEST(JobQueue, PopKeepsTheWholeJob) {
  DoneLog log;
  JobQueue q(1);
  Job job = log.make("j");
  job.type = ipc::MessageType::generate;
  job.binary = std::make_shared<const std::string>("\x00\x01", 2);
  job.enqueued = std::chrono::steady_clock::time_point(std::chrono::seconds(5));
  ASSERT_FALSE(q.push(std::move(job)).has_value());
  auto out = q.pop();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->type, ipc::MessageType::generate);
  EXPECT_EQ(*out->binary, std::string("\x00\x01", 2));
  EXPECT_EQ(out->enqueued, std::chrono::steady_clock::time_point(std::chrono::seconds(5)));
  ASSERT_TRUE(out->done);
  out->done(ipc::Frame{});
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_TRUE(log.calls[0].ok);
}

TEST(JobQueue, FullQueueHandsTheJobBackUntouched) {
  DoneLog log;
  JobQueue q(2);
  EXPECT_FALSE(q.push(log.make("a")).has_value());
  EXPECT_FALSE(q.push(log.make("b")).has_value());
  auto refused = q.push(log.make("c"));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->json, "c");
  ASSERT_TRUE(refused->done);
  EXPECT_TRUE(log.calls.empty()) << "a refused job's done must not be called";
  EXPECT_EQ(q.size(), 2u);

  // The caller still owns the refused job and answers it itself.
  refused->done(make_error(ErrorKind::unavailable, "queue full"));
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0].job, "c");

  // Room again after a pop.
  ASSERT_TRUE(q.pop().has_value());
  EXPECT_FALSE(q.push(log.make("d")).has_value());
  EXPECT_EQ(q.pop()->json, "b");
  EXPECT_EQ(q.pop()->json, "d");
}

TEST(JobQueue, CapacityZeroRefusesEverything) {
  DoneLog log;
  JobQueue q(0);
  for (int i = 0; i < 3; ++i) {
    auto back = q.push(log.make("x" + std::to_string(i)));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->json, "x" + std::to_string(i));
  }
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.pop().has_value());
  EXPECT_TRUE(log.calls.empty());
}

TEST(JobQueue, FailAllCallsEveryDoneOnceAndEmpties) {
  DoneLog log;
  JobQueue q(5);
  for (const char* name : {"a", "b", "c"}) ASSERT_FALSE(q.push(log.make(name)).has_value());
  q.fail_all(make_error(ErrorKind::unavailable, "shutting down"));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(q.pop().has_value());
  ASSERT_EQ(log.calls.size(), 3u);
  const char* order[] = {"a", "b", "c"};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(log.calls[i].job, order[i]);
    EXPECT_FALSE(log.calls[i].ok);
    EXPECT_EQ(log.calls[i].kind, ErrorKind::unavailable);
    EXPECT_EQ(log.calls[i].message, "shutting down");
  }
  // A second fail_all has nothing left to fail.
  q.fail_all(make_error(ErrorKind::internal, "again"));
  EXPECT_EQ(log.calls.size(), 3u);
  // The queue is usable afterwards.
  EXPECT_FALSE(q.push(log.make("d")).has_value());
  EXPECT_EQ(q.size(), 1u);
}

TEST(JobQueue, FailAllOnEmptyQueueDoesNothing) {
  JobQueue q(2);
  q.fail_all(make_error(ErrorKind::unavailable, "x"));
  EXPECT_TRUE(q.empty());
}

TEST(JobQueue, DoneMayPushDuringFailAll) {
  // A callback that re-enters the queue (e.g. a retry) must not be failed by the same call,
  // nor break the iteration.
  DoneLog log;
  JobQueue q(5);
  Job first;
  first.json = "first";
  first.done = [&](JobOutcome) { q.push(log.make("retry")); };
  ASSERT_FALSE(q.push(std::move(first)).has_value());
  ASSERT_FALSE(q.push(log.make("second")).has_value());
  q.fail_all(make_error(ErrorKind::unavailable, "x"));
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0].job, "second");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q.pop()->json, "retry");
}

// Pops every job and returns their names in order.
std::vector<std::string> drain(JobQueue& q) {
  std::vector<std::string> names;
  while (auto job = q.pop()) names.push_back(job->json);
  return names;
}

Job with_id(Job job, std::uint64_t id) {
  job.id = id;
  return job;
}

TEST(JobQueue, PushFrontGoesBeforeOthers) {
  DoneLog log;
  JobQueue q(10);
  ASSERT_FALSE(q.push(log.make("a")).has_value());
  ASSERT_FALSE(q.push(log.make("b")).has_value());
  q.push_front(log.make("replay"));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"replay", "a", "b"}));
  EXPECT_TRUE(log.calls.empty());
}

TEST(JobQueue, PushFrontOnEmptyQueue) {
  DoneLog log;
  JobQueue q(3);
  q.push_front(log.make("r"));
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.size(), 1u);
  ASSERT_FALSE(q.push(log.make("a")).has_value());
  EXPECT_EQ(drain(q), (std::vector<std::string>{"r", "a"}));
}

TEST(JobQueue, RepeatedPushFrontPutsTheLatestFirst) {
  DoneLog log;
  JobQueue q(10);
  ASSERT_FALSE(q.push(log.make("a")).has_value());
  q.push_front(log.make("x"));
  q.push_front(log.make("y"));
  EXPECT_EQ(drain(q), (std::vector<std::string>{"y", "x", "a"}));
}

TEST(JobQueue, PushFrontIsAllowedWhenFull) {
  DoneLog log;
  JobQueue q(2);
  ASSERT_FALSE(q.push(log.make("a")).has_value());
  ASSERT_FALSE(q.push(log.make("b")).has_value());
  q.push_front(log.make("replay"));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.capacity(), 2u);
  // Still over capacity: ordinary pushes are refused.
  auto refused = q.push(log.make("c"));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->json, "c");
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.pop()->json, "replay");
  // Back at capacity: still refused until there is room.
  EXPECT_TRUE(q.push(log.make("d")).has_value());
  EXPECT_EQ(q.pop()->json, "a");
  EXPECT_FALSE(q.push(log.make("e")).has_value());
  EXPECT_EQ(drain(q), (std::vector<std::string>{"b", "e"}));
  EXPECT_TRUE(log.calls.empty());
}

TEST(JobQueue, PushFrontIsAllowedWithCapacityZero) {
  DoneLog log;
  JobQueue q(0);
  q.push_front(log.make("r"));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.pop()->json, "r");
  EXPECT_TRUE(q.empty());
}

TEST(JobQueue, PushFrontKeepsTheWholeJob) {
  DoneLog log;
  JobQueue q(1);
  Job job = log.make("j");
  job.id = 42;
  job.type = ipc::MessageType::generate;
  job.binary = std::make_shared<const std::string>("bin");
  job.failures = 2;
  job.replays = 1;
  job.enqueued = std::chrono::steady_clock::time_point(std::chrono::seconds(9));
  q.push_front(std::move(job));
  auto out = q.pop();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->id, 42u);
  EXPECT_EQ(out->type, ipc::MessageType::generate);
  EXPECT_EQ(out->json, "j");
  EXPECT_EQ(*out->binary, "bin");
  EXPECT_EQ(out->failures, 2u);
  EXPECT_EQ(out->replays, 1u);
  EXPECT_EQ(out->enqueued, std::chrono::steady_clock::time_point(std::chrono::seconds(9)));
  ASSERT_TRUE(out->done);
  EXPECT_TRUE(log.calls.empty());
  out->done(ipc::Frame{});
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0].job, "j");
}

TEST(JobQueue, FailAllIncludesPushedFrontJobs) {
  DoneLog log;
  JobQueue q(1);
  ASSERT_FALSE(q.push(log.make("a")).has_value());
  q.push_front(log.make("r"));
  q.fail_all(make_error(ErrorKind::unavailable, "bye"));
  ASSERT_EQ(log.calls.size(), 2u);
  EXPECT_EQ(log.calls[0].job, "r");
  EXPECT_EQ(log.calls[1].job, "a");
  EXPECT_TRUE(q.empty());
}

TEST(JobQueue, RemoveTakesOutTheJobWithThatId) {
  DoneLog log;
  JobQueue q(10);
  const char* names[] = {"a", "b", "c", "d"};
  for (std::uint64_t i = 0; i < 4; ++i) {
    ASSERT_FALSE(q.push(with_id(log.make(names[i]), i + 1)).has_value());
  }
  auto removed = q.remove(2);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->id, 2u);
  EXPECT_EQ(removed->json, "b");
  EXPECT_EQ(q.size(), 3u);
  // The queue does not answer the job; the caller now owns it.
  EXPECT_TRUE(log.calls.empty());
  ASSERT_TRUE(removed->done);
  removed->done(make_error(ErrorKind::unavailable, "cancelled"));
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0].job, "b");
  // The rest keep their order.
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a", "c", "d"}));
}

TEST(JobQueue, RemoveTheHeadAndTheTail) {
  DoneLog log;
  JobQueue q(10);
  const char* names[] = {"a", "b", "c", "d"};
  for (std::uint64_t i = 0; i < 4; ++i) {
    ASSERT_FALSE(q.push(with_id(log.make(names[i]), 10 + i)).has_value());
  }
  auto head = q.remove(10);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->json, "a");
  auto tail = q.remove(13);
  ASSERT_TRUE(tail.has_value());
  EXPECT_EQ(tail->json, "d");
  EXPECT_EQ(drain(q), (std::vector<std::string>{"b", "c"}));
}

TEST(JobQueue, RemoveUnknownIdChangesNothing) {
  DoneLog log;
  JobQueue q(10);
  const char* names[] = {"a", "b", "c"};
  for (std::uint64_t i = 0; i < 3; ++i) {
    ASSERT_FALSE(q.push(with_id(log.make(names[i]), i + 1)).has_value());
  }
  EXPECT_FALSE(q.remove(99).has_value());
  EXPECT_FALSE(q.remove(0).has_value());
  EXPECT_EQ(q.size(), 3u);
  EXPECT_TRUE(log.calls.empty());
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(JobQueue, RemoveFromEmptyQueue) {
  JobQueue q(2);
  EXPECT_FALSE(q.remove(1).has_value());
  EXPECT_TRUE(q.empty());
}

TEST(JobQueue, RemoveTwiceFindsItOnce) {
  DoneLog log;
  JobQueue q(5);
  ASSERT_FALSE(q.push(with_id(log.make("a"), 7)).has_value());
  ASSERT_FALSE(q.push(with_id(log.make("b"), 8)).has_value());
  EXPECT_TRUE(q.remove(7).has_value());
  EXPECT_FALSE(q.remove(7).has_value());
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.pop()->json, "b");
}

TEST(JobQueue, RemoveMakesRoomForAPush) {
  DoneLog log;
  JobQueue q(2);
  ASSERT_FALSE(q.push(with_id(log.make("a"), 1)).has_value());
  ASSERT_FALSE(q.push(with_id(log.make("b"), 2)).has_value());
  ASSERT_TRUE(q.push(with_id(log.make("c"), 3)).has_value());
  ASSERT_TRUE(q.remove(1).has_value());
  EXPECT_FALSE(q.push(with_id(log.make("c"), 3)).has_value());
  EXPECT_EQ(drain(q), (std::vector<std::string>{"b", "c"}));
}

TEST(JobQueue, RemoveFindsAPushedFrontJob) {
  DoneLog log;
  JobQueue q(1);
  ASSERT_FALSE(q.push(with_id(log.make("a"), 1)).has_value());
  q.push_front(with_id(log.make("r"), 5));
  auto removed = q.remove(5);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->json, "r");
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a"}));
}

}  // namespace
}  // namespace respawn

namespace respawn {
namespace {

Job named(const std::string& name, int priority, unsigned replays = 0) {
  Job job;
  job.json = name;
  job.priority = priority;
  job.replays = replays;
  return job;
}

// Checks that front() names each job pop() then returns, until the queue is empty.
std::vector<std::string> drain_checking_front(JobQueue& q) {
  std::vector<std::string> names;
  while (!q.empty()) {
    const Job* next = q.front();
    EXPECT_NE(next, nullptr);
    if (!next) break;
    const std::string expected = next->json;
    const std::size_t size = q.size();
    EXPECT_EQ(q.front(), next) << "front() does not move the queue";
    EXPECT_EQ(q.size(), size);
    auto job = q.pop();
    EXPECT_TRUE(job.has_value());
    if (!job) break;
    EXPECT_EQ(job->json, expected);
    names.push_back(job->json);
  }
  EXPECT_EQ(q.front(), nullptr);
  return names;
}

TEST(JobQueue, FrontOfAnEmptyQueueIsNull) {
  JobQueue q(3);
  EXPECT_EQ(q.front(), nullptr);
  const JobQueue& cq = q;
  EXPECT_EQ(cq.front(), nullptr);
  JobQueue none(0);
  EXPECT_TRUE(none.push(named("refused", 0)).has_value());
  EXPECT_EQ(none.front(), nullptr);
}

TEST(JobQueue, FrontIsTheFirstInFifoOrder) {
  JobQueue q(5);
  ASSERT_FALSE(q.push(named("a", 0)).has_value());
  ASSERT_NE(q.front(), nullptr);
  EXPECT_EQ(q.front()->json, "a");
  ASSERT_FALSE(q.push(named("b", 0)).has_value());
  EXPECT_EQ(q.front()->json, "a") << "a later push of the same priority stays behind";
  EXPECT_EQ(drain_checking_front(q), (std::vector<std::string>{"a", "b"}));
}

TEST(JobQueue, FrontFollowsPriority) {
  JobQueue q(10);
  ASSERT_FALSE(q.push(named("low", 0)).has_value());
  EXPECT_EQ(q.front()->json, "low");
  ASSERT_FALSE(q.push(named("high", 5)).has_value());
  EXPECT_EQ(q.front()->json, "high");
  ASSERT_FALSE(q.push(named("mid", 2)).has_value());
  EXPECT_EQ(q.front()->json, "high");
  ASSERT_FALSE(q.push(named("top", kPriorityLevels - 1)).has_value());
  EXPECT_EQ(q.front()->json, "top");
  ASSERT_FALSE(q.push(named("high2", 5)).has_value());
  ASSERT_FALSE(q.push(named("low2", 0)).has_value());
  EXPECT_EQ(drain_checking_front(q),
            (std::vector<std::string>{"top", "high", "high2", "mid", "low", "low2"}));
}

TEST(JobQueue, FrontIsAReplayBeforeAnyPriority) {
  JobQueue q(10);
  ASSERT_FALSE(q.push(named("top", kPriorityLevels - 1)).has_value());
  ASSERT_FALSE(q.push(named("replayed-low", 0, 1)).has_value());
  EXPECT_EQ(q.front()->json, "replayed-low");
  ASSERT_FALSE(q.push(named("replayed-high", 7, 2)).has_value());
  EXPECT_EQ(q.front()->json, "replayed-low") << "replays among themselves: FIFO";
  ASSERT_FALSE(q.push(named("plain", 3)).has_value());
  EXPECT_EQ(drain_checking_front(q),
            (std::vector<std::string>{"replayed-low", "replayed-high", "top", "plain"}));
}

TEST(JobQueue, FrontIsAPushedFrontJob) {
  JobQueue q(2);
  ASSERT_FALSE(q.push(named("a", 9)).has_value());
  ASSERT_FALSE(q.push(named("b", 0)).has_value());
  q.push_front(named("r", 0, 1));
  EXPECT_EQ(q.front()->json, "r");
  EXPECT_EQ(drain_checking_front(q), (std::vector<std::string>{"r", "a", "b"}));
}

TEST(JobQueue, FrontAfterRemovingTheHead) {
  JobQueue q(5);
  Job a = named("a", 4);
  a.id = 1;
  Job b = named("b", 1);
  b.id = 2;
  ASSERT_FALSE(q.push(std::move(b)).has_value());
  ASSERT_FALSE(q.push(std::move(a)).has_value());
  EXPECT_EQ(q.front()->id, 1u);
  ASSERT_TRUE(q.remove(1).has_value());
  ASSERT_NE(q.front(), nullptr);
  EXPECT_EQ(q.front()->id, 2u);
  ASSERT_TRUE(q.remove(2).has_value());
  EXPECT_EQ(q.front(), nullptr);
}

TEST(JobQueue, FrontShowsTheWholeJobWithoutTakingIt) {
  JobQueue q(2);
  Job job = named("j", 3);
  job.id = 77;
  job.weight = 4096;
  job.type = ipc::MessageType::generate;
  ASSERT_FALSE(q.push(std::move(job)).has_value());
  const JobQueue& cq = q;
  const Job* front = cq.front();
  ASSERT_NE(front, nullptr);
  EXPECT_EQ(front->id, 77u);
  EXPECT_EQ(front->weight, 4096u);
  EXPECT_EQ(front->priority, 3);
  EXPECT_EQ(front->type, ipc::MessageType::generate);
  EXPECT_EQ(q.size(), 1u);
  auto popped = q.pop();
  ASSERT_TRUE(popped.has_value());
  EXPECT_EQ(popped->id, 77u);
  EXPECT_EQ(popped->weight, 4096u);
}

TEST(JobQueue, FailAllLeavesNoFront) {
  JobQueue q(3);
  Job job = named("a", 0);
  job.done = [](JobOutcome) {};
  ASSERT_FALSE(q.push(std::move(job)).has_value());
  q.fail_all(make_error(ErrorKind::unavailable, "bye"));
  EXPECT_EQ(q.front(), nullptr);
}

}  // namespace
}  // namespace respawn
