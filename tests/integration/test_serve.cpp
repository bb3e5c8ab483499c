// The real supervisor and the real libtorch worker, end to end: readiness, metadata,
// generate, infer against the reference outputs, and every bad-input path.
#include <gtest/gtest.h>

#include <fstream>
#include <future>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;

#if RESPAWN_HAS_WORKER

std::string generate_body(const std::string& prompt, json params) {
  return json{{"text_input", prompt}, {"parameters", std::move(params)}}.dump();
}

json classifier_reference() {
  std::ifstream in(model_path("classifier_reference.json"));
  return json::parse(in);
}

json reference_request() {
  const auto ref = classifier_reference();
  return {{"id", "req-1"}, {"inputs", json::array({ref["input"]})}};
}

TEST(Serve, BundledDemoModelIsTheDefaultAndBecomesReady) {
  Server server({});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  EXPECT_EQ(server.get("/v2/health/live").status, 200);
  const auto meta = server.get("/v2/models/demo");
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(meta.json()["name"], "demo");
  EXPECT_EQ(meta.json()["task"], "generate");
  EXPECT_EQ(meta.json()["device"], test_device() == "cuda" ? "cuda:0" : "cpu");
  EXPECT_EQ(meta.json()["inputs"][0]["name"], "input_ids");
  EXPECT_EQ(server.get("/v2/models/demo/ready").json()["ready"], true);
  const auto server_meta = server.get("/v2").json();
  EXPECT_EQ(server_meta["name"], "respawn");
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1);
  EXPECT_EQ(server.metric("respawn_ready"), 1);
}

TEST(Serve, GreedyGenerateIsDeterministicAndReadable) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto body = generate_body("The supervisor", {{"max_tokens", 32}});
  const auto first = server.post("/v2/models/demo/generate", body);
  const auto second = server.post("/v2/models/demo/generate", body);
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(second.status, 200) << second.body;
  const auto text = first.json()["text_output"].get<std::string>();
  EXPECT_EQ(text, second.json()["text_output"].get<std::string>());
  EXPECT_EQ(text.size(), 32u);
  // The demo model learned its corpus; greedy decoding continues the sentence it knows.
  EXPECT_EQ(text.rfind(" speaks HTTP", 0), 0u) << text;
  EXPECT_EQ(first.json()["finish_reason"], "length");
  EXPECT_EQ(first.json()["usage"]["completion_tokens"], 32);
  EXPECT_EQ(first.json()["usage"]["prompt_tokens"], 14);
}

TEST(Serve, GenerationsFillTheTokenAndLatencyMetrics) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto res =
      server.post("/v2/models/demo/generate", generate_body("The supervisor", {{"max_tokens", 8}}));
  ASSERT_EQ(res.status, 200) << res.body;
  const auto streamed = server.post("/v2/models/demo/generate_stream",
                                    generate_body("The supervisor", {{"max_tokens", 8}}));
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_EQ(server.metric("respawn_prompt_tokens_total"), 2 * 14);
  EXPECT_EQ(server.metric("respawn_generation_tokens_total"), 2 * 8);
  EXPECT_EQ(server.metric("respawn_time_to_first_token_seconds_count"), 2);
  EXPECT_EQ(server.metric("respawn_time_per_output_token_seconds_count"), 2);
  EXPECT_GT(server.metric("respawn_time_per_output_token_seconds_sum"), 0);
  EXPECT_EQ(server.metric("respawn_batch_size_count"), 2);
  EXPECT_EQ(server.metric(R"(respawn_batch_size_bucket{le="1"})"), 2) << "one at a time";
}

TEST(Serve, SeededSamplingRepeatsAndStopStringsEndTheText) {
  Server server({"--model", model_path("demo.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto sampled = generate_body(
      "Once", {{"max_tokens", 24}, {"temperature", 1.5}, {"top_p", 0.95}, {"seed", 1234}});
  const auto a = server.post("/v2/models/demo/generate", sampled).json();
  const auto b = server.post("/v2/models/demo/generate", sampled).json();
  EXPECT_EQ(a["text_output"], b["text_output"]);
  EXPECT_EQ(a["seed"], 1234);

  // Top-level parameters work too (Triton's generate extension allows both).
  const auto stopped = server.post(
      "/v2/models/demo/generate",
      json{{"text_input", "The supervisor"}, {"max_tokens", 100}, {"stop", "queue"}}.dump());
  ASSERT_EQ(stopped.status, 200) << stopped.body;
  EXPECT_EQ(stopped.json()["finish_reason"], "stop");
  EXPECT_EQ(stopped.json()["text_output"], " speaks HTTP and keeps a ");
}

TEST(Serve, InferMatchesTheReferenceOutputs) {
  Server server({"--model", model_path("classifier.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto ref = classifier_reference();
  const auto res = server.post("/v2/models/classifier/infer", reference_request().dump());
  ASSERT_EQ(res.status, 200) << res.body;
  const auto out = res.json();
  EXPECT_EQ(out["model_name"], "classifier");
  EXPECT_EQ(out["id"], "req-1");
  ASSERT_EQ(out["outputs"].size(), 2u);
  for (const auto& o : out["outputs"]) {
    const auto& want = ref["outputs"][o["name"].get<std::string>()];
    EXPECT_EQ(o["datatype"], want["datatype"]);
    EXPECT_EQ(o["shape"], want["shape"]);
    ASSERT_EQ(o["data"].size(), want["data"].size());
    for (std::size_t i = 0; i < want["data"].size(); ++i) {
      EXPECT_NEAR(o["data"][i].get<double>(), want["data"][i].get<double>(), 1e-5) << o["name"];
    }
  }
  // Asking for one output returns only that one.
  auto only_label = reference_request();
  only_label["outputs"] = json::array({{{"name", "label"}}});
  const auto label = server.post("/v2/models/classifier/infer", only_label.dump()).json();
  ASSERT_EQ(label["outputs"].size(), 1u);
  EXPECT_EQ(label["outputs"][0]["data"], ref["outputs"]["label"]["data"]);
}

TEST(Serve, BadRequestsGetClearErrorsAndTheServerKeepsServing) {
  Server server({"--model", model_path("classifier.pt"), "--max-body-bytes", "4096"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto expect_error = [](const HttpResult& r, int status, const std::string& words) {
    EXPECT_EQ(r.status, status) << r.body;
    const auto j = r.json();
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    EXPECT_NE(j["error"].get<std::string>().find(words), std::string::npos) << r.body;
  };
  expect_error(server.post("/v2/models/classifier/infer", "{not json"), 400, "not valid JSON");
  expect_error(server.post("/v2/models/nope/infer", reference_request().dump()), 404,
               "unknown model 'nope'");
  expect_error(server.get("/v3/whatever"), 404, "no route");

  auto wrong_shape = reference_request();
  wrong_shape["inputs"][0]["shape"] = {2, 6};
  expect_error(server.post("/v2/models/classifier/infer", wrong_shape.dump()), 400,
               "must have shape [-1,4]");
  auto wrong_count = reference_request();
  wrong_count["inputs"][0]["shape"] = {4, 4};
  expect_error(server.post("/v2/models/classifier/infer", wrong_count.dump()), 400,
               "16 elements but data has 12");
  auto wrong_type = reference_request();
  wrong_type["inputs"][0]["datatype"] = "FP64";
  expect_error(server.post("/v2/models/classifier/infer", wrong_type.dump()), 400, "must be FP32");
  expect_error(server.post("/v2/models/classifier/generate", R"({"text_input":"hi"})"), 400,
               "task is not generate");

  const std::string big(8192, ' ');
  expect_error(server.post("/v2/models/classifier/infer", "{\"pad\":\"" + big + "\"}"), 413,
               "exceeds 4096 bytes");
  const auto garbage = raw_request(server.port(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(garbage.status, 400);

  const auto ok = server.post("/v2/models/classifier/infer", reference_request().dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1) << "bad input must not cost a worker";
  EXPECT_EQ(server.metric(R"(respawn_requests_total{route="infer",code="400"})"), 4);
}

TEST(Serve, FullQueueAnswers503WithRetryAfterAndLosesNothingQueued) {
  Server server({"--model", model_path("demo.pt"), "--max-queue", "1", "--max-batch-size", "1"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const int port = server.port();
  const auto post_async = [port](const std::string& body) {
    return std::async(std::launch::async, [port, body] {
      return http_request(port, "POST", "/v2/models/demo/generate", body);
    });
  };
  auto running = post_async(generate_body("The", {{"max_tokens", 1500}}));
  ASSERT_TRUE(wait_until([&] { return server.metric("respawn_requests_inflight") == 1; },
                         std::chrono::seconds(10)));
  auto queued = post_async(generate_body("Hello", {{"max_tokens", 4}}));
  ASSERT_TRUE(wait_until([&] { return server.metric("respawn_queue_depth") == 1; },
                         std::chrono::seconds(10)));
  const auto refused = server.post("/v2/models/demo/generate", generate_body("x", {}));
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.headers.count("retry-after"), 1u);
  EXPECT_NE(refused.json()["error"].get<std::string>().find("queue is full"), std::string::npos);
  EXPECT_EQ(running.get().status, 200);
  EXPECT_EQ(queued.get().status, 200);
}

#endif  // RESPAWN_HAS_WORKER

}  // namespace
}  // namespace respawn::test
