// Failures inside a model's forward, with the real supervisor and the real libtorch worker: an
// input the spec cannot rule out (an index past an embedding table, tensors whose shapes do not
// fit together) is the client's error, a 400 that says what TorchScript said, and costs no
// worker. models/embedding_bag.pt: ids INT64 [-1,-1] into a 16-row table, weights FP32 [-1,-1].
#include <gtest/gtest.h>

#include <future>
#include <string>
#include <vector>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;

#if RESPAWN_HAS_WORKER

const std::string kInfer = "/v2/models/embedding_bag/infer";

json bag_request(const std::vector<std::int64_t>& ids, const std::vector<float>& weights,
                 std::vector<std::int64_t> weights_shape = {}) {
  const auto n = static_cast<std::int64_t>(ids.size());
  if (weights_shape.empty()) weights_shape = {1, static_cast<std::int64_t>(weights.size())};
  return {
      {"inputs",
       json::array({
           {{"name", "ids"}, {"datatype", "INT64"}, {"shape", {1, n}}, {"data", ids}},
           {{"name", "weights"}, {"datatype", "FP32"}, {"shape", weights_shape}, {"data", weights}},
       })}};
}

std::string error_of(const HttpResult& r) {
  const auto j = r.json();
  return j.is_object() && j.contains("error") && j["error"].is_string()
             ? j["error"].get<std::string>()
             : std::string();
}

void expect_pooled(const HttpResult& r, const std::vector<double>& want) {
  ASSERT_EQ(r.status, 200) << r.body;
  const auto out = r.json()["outputs"];
  ASSERT_EQ(out.size(), 1u) << r.body;
  EXPECT_EQ(out[0]["name"], "pooled");
  ASSERT_EQ(out[0]["data"].size(), want.size()) << r.body;
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_DOUBLE_EQ(out[0]["data"][i].get<double>(), want[i]) << r.body;
  }
}

// Table row i is (4i .. 4i+3) / 8: ids [1, 2] weighted [1, 0.5].
const std::vector<double> kPooled12 = {1.0, 1.1875, 1.375, 1.5625};

TEST(ModelErrors, AnIndexPastTheEmbeddingIs400WithTheTorchScriptErrorLine) {
  Server server({"--model", model_path("embedding_bag.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t pid = server.worker_pid();
  ASSERT_GT(pid, 0);
  expect_pooled(server.post(kInfer, bag_request({1, 2}, {1.0f, 0.5f}).dump()), kPooled12);

  for (const std::int64_t bad : {std::int64_t{99}, std::int64_t{16}, std::int64_t{-20}}) {
    const auto r = server.post(kInfer, bag_request({1, bad}, {1.0f, 1.0f}).dump());
    EXPECT_EQ(r.status, 400) << r.body;
    const auto error = error_of(r);
    EXPECT_NE(error.find("index out of range"), std::string::npos) << r.body;
    EXPECT_EQ(error.find("TorchScript interpreter"), std::string::npos) << r.body;
    EXPECT_EQ(error.find('\n'), std::string::npos) << "one line, no traceback: " << r.body;
    // The worker that refused it is named, as on a result (smoke reports rely on it).
    const auto header = r.headers.find("x-respawn-worker-pid");
    ASSERT_NE(header, r.headers.end()) << r.body;
    EXPECT_EQ(header->second, std::to_string(pid));
  }

  // The same worker goes on serving: an input error is not a reason to replace it.
  expect_pooled(server.post(kInfer, bag_request({1, 2}, {1.0f, 0.5f}).dump()), kPooled12);
  EXPECT_EQ(server.worker_pid(), pid);
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1) << server.log();
  EXPECT_EQ(server.metric(R"(respawn_requests_total{route="infer",code="400"})"), 3);
  EXPECT_LE(server.metric(R"(respawn_requests_total{route="infer",code="500"})"), 0);
}

TEST(ModelErrors, InputsWhoseShapesDoNotFitAre400) {
  Server server({"--model", model_path("embedding_bag.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t pid = server.worker_pid();
  // Three ids, four weights: both pass the [-1,-1] spec, the multiply in forward fails.
  const auto r = server.post(kInfer, bag_request({1, 2, 3}, {1.0f, 1.0f, 1.0f, 1.0f}).dump());
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(error_of(r).find("The size of tensor a (3) must match the size of tensor b (4)"),
            std::string::npos)
      << r.body;
  expect_pooled(server.post(kInfer, bag_request({1, 2}, {1.0f, 0.5f}).dump()), kPooled12);
  EXPECT_EQ(server.worker_pid(), pid);
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1) << server.log();
}

TEST(ModelErrors, ABadIndexFailsOnlyItsOwnRequestWhenBatched) {
  // Requests that arrive together run as one forward; when it fails for bad input each runs
  // alone, so only the bad one gets the 400.
  Server server({"--model", model_path("embedding_bag.pt"), "--max-batch-delay-us", "50000"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t pid = server.worker_pid();
  std::vector<std::future<HttpResult>> round;
  for (int i = 0; i < 6; ++i) {
    const auto body =
        (i == 2 ? bag_request({1, 99}, {1.0f, 0.5f}) : bag_request({1, 2}, {1.0f, 0.5f})).dump();
    round.push_back(std::async(std::launch::async, [&server, body] {
      return http_request(server.port(), "POST", kInfer, body);
    }));
  }
  for (std::size_t i = 0; i < round.size(); ++i) {
    const auto r = round[i].get();
    if (i == 2) {
      EXPECT_EQ(r.status, 400) << r.body;
      EXPECT_NE(error_of(r).find("index out of range"), std::string::npos) << r.body;
    } else {
      expect_pooled(r, kPooled12);
    }
  }
  EXPECT_EQ(server.worker_pid(), pid);
}

#endif  // RESPAWN_HAS_WORKER

}  // namespace
}  // namespace respawn::test
