// The model formats the worker serves, and what it says about the libtorch it was built with:
// TorchScript saved by torch 1.13 and by the pinned torch, an AOTInductor package (.pt2), a
// package compiled for cuda on a machine without a GPU, `--device auto` without a GPU, and the
// real sticky CUDA fault.
#include <gtest/gtest.h>

#include <fstream>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;
using std::chrono::seconds;

#if RESPAWN_HAS_WORKER

json classifier_reference() {
  std::ifstream in(model_path("classifier_reference.json"));
  return json::parse(in);
}

// Serves `model` and checks its answer to the reference input against the reference outputs
// (`outputs_key` in classifier_reference.json).
void expect_reference_answer(const std::string& model, const std::string& outputs_key) {
  Server server({"--model", model, "--model-name", "classifier"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto ref = classifier_reference();
  ASSERT_TRUE(ref.contains(outputs_key)) << outputs_key;
  const json request = {{"inputs", json::array({ref["input"]})}};
  const auto res = server.post("/v2/models/classifier/infer", request.dump());
  ASSERT_EQ(res.status, 200) << res.body;
  const auto out = res.json();
  ASSERT_EQ(out["outputs"].size(), 2u) << res.body;
  for (const auto& o : out["outputs"]) {
    const auto& want = ref[outputs_key][o["name"].get<std::string>()];
    EXPECT_EQ(o["datatype"], want["datatype"]) << o["name"];
    EXPECT_EQ(o["shape"], want["shape"]) << o["name"];
    ASSERT_EQ(o["data"].size(), want["data"].size()) << o["name"];
    for (std::size_t i = 0; i < want["data"].size(); ++i) {
      EXPECT_NEAR(o["data"][i].get<double>(), want["data"][i].get<double>(), 1e-5) << o["name"];
    }
  }
}

TEST(Models, TorchScriptSavedByTorch113IsServedWithTheReferenceOutputs) {
  expect_reference_answer(data_path("classifier_torch1.13.pt"), "outputs");
}

TEST(Models, AotInductorPackageIsServedWithItsReferenceOutputs) {
  expect_reference_answer(model_path("classifier.pt2"), "pt2_outputs");
}

// The same batching, metadata and error paths as a TorchScript model.
TEST(Models, AotInductorPackageBatchesAndValidatesLikeTorchScript) {
  Server server({"--model", model_path("classifier.pt2"), "--enable-fault-injection"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto meta = server.get("/v2/models/classifier").json();
  EXPECT_EQ(meta["platform"], "pytorch_aotinductor");
  EXPECT_EQ(meta["inputs"][0]["shape"], json({-1, 4}));
  const auto workers = server.workers();
  EXPECT_EQ(workers["model_format"], "aoti_package");

  // Concurrent requests of different row counts are stacked into one forward and split back.
  const auto body = [](int rows) {
    std::vector<float> data(static_cast<std::size_t>(rows) * 4, 0.5f);
    return json{
        {"inputs", {{{"name", "x"}, {"datatype", "FP32"}, {"shape", {rows, 4}}, {"data", data}}}}}
        .dump();
  };
  std::vector<std::string> bodies;
  for (int rows = 1; rows <= 6; ++rows) bodies.push_back(body(rows));
  const auto answers =
      post_all_while_the_worker_sleeps(server, "/v2/models/classifier/infer", body(1), bodies);
  int batched = 0;
  for (int rows = 1; rows <= 6; ++rows) {
    const auto& res = answers[static_cast<std::size_t>(rows - 1)];
    ASSERT_EQ(res.status, 200) << res.body;
    EXPECT_EQ(res.json()["outputs"][0]["shape"], json({rows, 3}));
    if (batch_size(res) > 1) ++batched;
  }
  EXPECT_GT(batched, 0) << "no request shared a forward";

  // The spec in the package's metadata is enforced, and the worker stays.
  const auto bad = server.post(
      "/v2/models/classifier/infer",
      json{{"inputs",
            {{{"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 5}}, {"data", {1, 2, 3, 4, 5}}}}}}
          .dump());
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("must have shape [-1,4]"), std::string::npos) << bad.body;
  EXPECT_EQ(server.post("/v2/models/classifier/infer", body(2)).status, 200);
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1);
}

TEST(Models, AotInductorPackageForCudaFailsAtLoadWithoutAGpu) {
  if (test_device() == "cuda") GTEST_SKIP() << "this machine has a GPU";
  Server server({"--model", data_path("classifier_cuda_device.pt2"), "--device", "auto",
                 "--restart-backoff-ms", "50", "--restart-backoff-max-ms", "200"});
  ASSERT_TRUE(wait_until(
      [&] { return server.metric(R"(respawn_worker_recycles_total{reason="load_failure"})") >= 2; },
      seconds(30)))
      << server.log();
  // A load failure each time, never a crash: the worker says why and exits cleanly.
  EXPECT_EQ(server.metric(R"(respawn_worker_recycles_total{reason="crash"})"), -1) << server.log();
  EXPECT_NE(server.log().find("the package was compiled for cuda, but there is no GPU"),
            std::string::npos)
      << server.log();
  const auto ready = server.get("/v2/health/ready");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(server.get("/v2/health/live").status, 200);
}

TEST(Models, AotInductorPackageForCpuRefusesDeviceCuda) {
  Server server(
      {"--model", model_path("classifier.pt2"), "--device", "cuda", "--restart-backoff-ms", "50"});
  ASSERT_TRUE(wait_until(
      [&] { return server.metric(R"(respawn_worker_recycles_total{reason="load_failure"})") >= 1; },
      seconds(30)))
      << server.log();
  EXPECT_NE(server.log().find("the package was compiled for cpu; --device cuda needs one"),
            std::string::npos)
      << server.log();
}

// What GET /admin/workers says about the worker's build and device.
TEST(Models, AdminWorkersShowsTheLibtorchTheCudaBuildAndTheDevice) {
  Server server({"--model", model_path("classifier.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto w = server.workers();
  ASSERT_TRUE(w.contains("libtorch_version")) << w.dump();
  const auto version = w["libtorch_version"].get<std::string>();
  EXPECT_EQ(version.rfind("2.", 0), 0u) << version;
  EXPECT_EQ(w["cuda_build"], RESPAWN_WORKER_CUDA_BUILD != 0) << w.dump();
  EXPECT_EQ(w["device"], test_device() == "cuda" ? "cuda:0" : "cpu") << w.dump();
  EXPECT_EQ(w["model_format"], "torchscript");
  if (RESPAWN_WORKER_CUDA_BUILD) {
    EXPECT_TRUE(w.contains("cuda_version")) << w.dump();
  }
}

TEST(Models, DeviceAutoWithoutAGpuRunsOnCpuAndSaysWhy) {
  if (test_device() == "cuda") GTEST_SKIP() << "this machine has a GPU";
  Server server({"--model", model_path("classifier.pt"), "--device", "auto"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto w = server.workers();
  EXPECT_EQ(w["device"], "cpu");
  ASSERT_TRUE(w.contains("device_fallback")) << w.dump();
  const auto reason = w["device_fallback"].get<std::string>();
  EXPECT_FALSE(reason.empty());
  EXPECT_NE(server.log().find("--device auto: running on cpu: " + reason), std::string::npos)
      << server.log();
  // The explicit choice fails instead, with the same reason.
  Server cuda(
      {"--model", model_path("classifier.pt"), "--device", "cuda", "--restart-backoff-ms", "50"});
  ASSERT_TRUE(
      wait_until([&] { return cuda.log().find("--device cuda: " + reason) != std::string::npos; },
                 seconds(30)))
      << cuda.log();
}

// A real illegal memory access on cuda poisons the context: the worker goes (cuda_error), the
// server is not ready until a fresh one has warmed up, and then serves. On cpu the fault is
// refused as bad input and the worker stays.
TEST(Models, IllegalMemoryAccessRecyclesACudaWorkerAndIsRefusedOnCpu) {
  Server server(
      {"--model", model_path("classifier.pt"), "--enable-fault-injection", "--replay-limit", "0"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const pid_t first = server.worker_pid();
  const auto ok_body = classifier_reference();
  const json request = {{"inputs", json::array({ok_body["input"]})}};
  const auto res = server.post("/v2/models/classifier/infer", request.dump(),
                               {{"X-Respawn-Fault", "illegal_memory_access"}});
  if (test_device() != "cuda") {
    EXPECT_EQ(res.status, 400) << res.body;
    EXPECT_NE(res.body.find("needs a worker running on cuda"), std::string::npos) << res.body;
    EXPECT_EQ(server.worker_pid(), first);
    EXPECT_EQ(server.post("/v2/models/classifier/infer", request.dump()).status, 200);
    return;
  }
  EXPECT_EQ(res.status, 502) << res.body;
  EXPECT_NE(res.body.find("illegal memory access"), std::string::npos) << res.body;
  ASSERT_TRUE(wait_until(
      [&] { return server.metric(R"(respawn_worker_recycles_total{reason="cuda_error"})") >= 1; },
      seconds(30)))
      << server.log();
  ASSERT_TRUE(server.wait_ready(seconds(60))) << server.log();
  EXPECT_NE(server.worker_pid(), first);
  EXPECT_EQ(server.post("/v2/models/classifier/infer", request.dump()).status, 200);
}

#endif  // RESPAWN_HAS_WORKER

}  // namespace
}  // namespace respawn::test
