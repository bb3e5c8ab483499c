// Tests for `respawn serve` options (supervisor/serve_options.hpp).
#include "serve_options.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace respawn {
namespace {

void expect_rejected(const std::vector<std::string>& args, const std::string& mentions = "") {
  std::string joined;
  for (const auto& a : args) joined += a + " ";
  auto r = parse_serve_options(args);
  ASSERT_FALSE(r.ok()) << joined << "was accepted";
  EXPECT_EQ(r.error().kind, ErrorKind::bad_input) << joined;
  EXPECT_FALSE(r.error().message.empty()) << joined;
  if (!mentions.empty()) {
    EXPECT_NE(r.error().message.find(mentions), std::string::npos)
        << joined << "-> " << r.error().message;
  }
}

TEST(ServeOptions, Defaults) {
  auto r = parse_serve_options({});
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ServeOptions& o = *r;
  EXPECT_EQ(o.model, "");
  EXPECT_EQ(o.model_name, "");
  EXPECT_EQ(o.task, "");
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.port, 8000);
  EXPECT_EQ(o.device, "auto");
  EXPECT_EQ(o.max_queue, 64u);
  EXPECT_EQ(o.worker_bin, "");
  EXPECT_EQ(o.max_body_bytes, std::size_t{8} << 20);
  EXPECT_EQ(o.read_timeout_ms, 30000u);
  EXPECT_EQ(o.worker_threads, 0);
  EXPECT_EQ(o.policy.restart_backoff_ms, 100u);
  EXPECT_EQ(o.policy.restart_backoff_max_ms, 5000u);
}

TEST(ServeOptions, AllFlagsParsed) {
  auto r = parse_serve_options({
      "--model",
      "/models/gpt.pt",
      "--model-name",
      "gpt",
      "--task",
      "generate",
      "--host",
      "0.0.0.0",
      "--port",
      "9001",
      "--device",
      "cuda",
      "--max-queue",
      "7",
      "--worker-bin",
      "/opt/bin/w",
      "--max-body-bytes",
      "1024",
      "--read-timeout-ms",
      "250",
      "--worker-threads",
      "4",
      "--restart-backoff-ms",
      "50",
      "--restart-backoff-max-ms",
      "800",
  });
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ServeOptions& o = *r;
  EXPECT_EQ(o.model, "/models/gpt.pt");
  EXPECT_EQ(o.model_name, "gpt");
  EXPECT_EQ(o.task, "generate");
  EXPECT_EQ(o.host, "0.0.0.0");
  EXPECT_EQ(o.port, 9001);
  EXPECT_EQ(o.device, "cuda");
  EXPECT_EQ(o.max_queue, 7u);
  EXPECT_EQ(o.worker_bin, "/opt/bin/w");
  EXPECT_EQ(o.max_body_bytes, 1024u);
  EXPECT_EQ(o.read_timeout_ms, 250u);
  EXPECT_EQ(o.worker_threads, 4);
  EXPECT_EQ(o.policy.restart_backoff_ms, 50u);
  EXPECT_EQ(o.policy.restart_backoff_max_ms, 800u);
}

TEST(ServeOptions, EqualsFormAndOtherChoices) {
  auto r = parse_serve_options({"--port=0", "--task=tensor", "--device=cpu", "--host=::1"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->port, 0);
  EXPECT_EQ(r->task, "tensor");
  EXPECT_EQ(r->device, "cpu");
  EXPECT_EQ(r->host, "::1");
  auto a = parse_serve_options({"--device", "auto", "--port", "65535"});
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->device, "auto");
  EXPECT_EQ(a->port, 65535);
}

TEST(ServeOptions, BadValues) {
  expect_rejected({"--port", "70000"});
  expect_rejected({"--port", "-1"});
  expect_rejected({"--port", "http"});
  expect_rejected({"--device", "gpu"}, "gpu");
  expect_rejected({"--task", "foo"}, "foo");
  expect_rejected({"--max-queue", "many"});
  expect_rejected({"--max-body-bytes", "0"});
  expect_rejected({"--read-timeout-ms", "10"});
  expect_rejected({"--worker-threads", "-1"});
  expect_rejected({"--worker-threads", "5000"});
}

TEST(ServeOptions, UnknownFlagsAndExtraArguments) {
  expect_rejected({"--gpus", "2"}, "--gpus");
  expect_rejected({"--model"});  // missing its value
  expect_rejected({"stray"}, "stray");
}

TEST(ServeOptions, BackoffMaxBelowBaseIsRejected) {
  expect_rejected({"--restart-backoff-ms", "1000", "--restart-backoff-max-ms", "999"},
                  "restart_backoff_max_ms");
  expect_rejected({"--restart-backoff-ms", "6000"});  // above the default max of 5000
  auto equal =
      parse_serve_options({"--restart-backoff-ms", "1000", "--restart-backoff-max-ms", "1000"});
  ASSERT_TRUE(equal.ok()) << equal.error().message;
  EXPECT_EQ(equal->policy.restart_backoff_max_ms, 1000u);
}

TEST(ServeOptions, ResolvePathsFillsDefaults) {
  ServeOptions o;
  resolve_paths(o, "/opt/respawn/bin");
  EXPECT_EQ(o.model, "/opt/respawn/share/respawn/models/demo.pt");
  EXPECT_EQ(o.model_name, "demo");
  EXPECT_EQ(o.worker_bin, "/opt/respawn/bin/respawn-worker");
}

TEST(ServeOptions, ResolvePathsNormalizesTheModelPath) {
  ServeOptions o;
  resolve_paths(o, "/a/b/./bin/");
  EXPECT_EQ(o.model, "/a/b/share/respawn/models/demo.pt");
  EXPECT_EQ(o.model_name, "demo");
}

TEST(ServeOptions, ResolvePathsDerivesTheNameFromAnExplicitModel) {
  ServeOptions o;
  o.model = "/data/models/tiny-gpt.v2.pt";
  resolve_paths(o, "/usr/bin");
  EXPECT_EQ(o.model, "/data/models/tiny-gpt.v2.pt");
  EXPECT_EQ(o.model_name, "tiny-gpt.v2");
  EXPECT_EQ(o.worker_bin, "/usr/bin/respawn-worker");
}

TEST(ServeOptions, ResolvePathsLeavesExplicitValuesAlone) {
  ServeOptions o;
  o.model = "relative/../m.pt";
  o.model_name = "custom";
  o.worker_bin = "./my-worker";
  resolve_paths(o, "/usr/bin");
  EXPECT_EQ(o.model, "relative/../m.pt");
  EXPECT_EQ(o.model_name, "custom");
  EXPECT_EQ(o.worker_bin, "./my-worker");
}

TEST(ServeOptions, CudaAllocConfGoesIntoTheWorkersEnvironment) {
  auto r = parse_serve_options({"--cuda-alloc-conf", "expandable_segments:True"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->cuda_alloc_conf, "expandable_segments:True");
  const auto env = worker_environment(*r);
  ASSERT_EQ(env.size(), 2u);
  EXPECT_EQ(env.at("PYTORCH_CUDA_ALLOC_CONF"), "expandable_segments:True");
  EXPECT_EQ(env.at("OMP_WAIT_POLICY"), "PASSIVE");
  // Several settings in one value, as PyTorch takes them; commas are not list separators here.
  auto several = parse_serve_options(
      {"--cuda-alloc-conf=expandable_segments:True,garbage_collection_threshold:0.6"});
  ASSERT_TRUE(several.ok()) << several.error().message;
  EXPECT_EQ(worker_environment(*several).at("PYTORCH_CUDA_ALLOC_CONF"),
            "expandable_segments:True,garbage_collection_threshold:0.6");
}

TEST(ServeOptions, NoCudaAllocConfLeavesTheInheritedOneAlone) {
  // Without the flag the workers get no override, so a PYTORCH_CUDA_ALLOC_CONF already in the
  // supervisor's environment reaches them unchanged.
  auto r = parse_serve_options({}, {{"PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->cuda_alloc_conf, "");
  EXPECT_EQ(worker_environment(*r).count("PYTORCH_CUDA_ALLOC_CONF"), 0u);
  expect_rejected({"--cuda-alloc-conf"});  // missing its value
}

// libtorch's OpenMP threads wait passively unless the operator chose otherwise.
TEST(ServeOptions, WorkersWaitPassivelyUnlessTheEnvironmentSaysOtherwise) {
  auto r = parse_serve_options({}, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(worker_environment(*r),
            (std::map<std::string, std::string>{{"OMP_WAIT_POLICY", "PASSIVE"}}));
  auto inherited = parse_serve_options({}, {{"OMP_WAIT_POLICY", "ACTIVE"}});
  ASSERT_TRUE(inherited.ok()) << inherited.error().message;
  EXPECT_TRUE(worker_environment(*inherited).empty());
}

TEST(ServeOptions, HelpListsTheFlags) {
  const std::string help = serve_help();
  for (const char* flag :
       {"--model", "--model-name", "--task", "--host", "--port", "--device", "--max-queue",
        "--worker-bin", "--max-body-bytes", "--read-timeout-ms", "--worker-threads",
        "--restart-backoff-ms", "--restart-backoff-max-ms", "--cuda-alloc-conf"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace respawn
