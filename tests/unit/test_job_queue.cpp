// Tests for the bounded job FIFO (supervisor/job_queue.hpp).
#include "job_queue.hpp"

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
  job.binary = std::string("\x00\x01", 2);
  job.enqueued = std::chrono::steady_clock::time_point(std::chrono::seconds(5));
  ASSERT_FALSE(q.push(std::move(job)).has_value());
  auto out = q.pop();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->type, ipc::MessageType::generate);
  EXPECT_EQ(out->binary, std::string("\x00\x01", 2));
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

}  // namespace
}  // namespace respawn
