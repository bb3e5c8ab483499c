// Tests for the Scheduler (supervisor/scheduling/scheduler.hpp) with a WorkerManager that is never
// started: what happens to queued jobs without a worker.
#include "scheduling/scheduler.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

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

}  // namespace
}  // namespace respawn
