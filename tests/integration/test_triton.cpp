// Triton's protocol extensions against the real worker and the bundled classifier: binary tensor
// data both ways, model versions, the statistics extension and the extensions list. The real
// tritonclient is driven against the same server by tests/python/test_tritonclient.py.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;

#if RESPAWN_HAS_WORKER

json reference() {
  std::ifstream in(model_path("classifier_reference.json"));
  return json::parse(in);
}

// The reference input as Triton's binary tensor data: a JSON header, then the raw floats.
std::pair<std::string, std::map<std::string, std::string>> binary_body(const json& outputs) {
  const auto ref = reference();
  std::string raw;
  for (const auto& v : ref["input"]["data"]) {
    const float f = v.get<float>();
    raw.append(reinterpret_cast<const char*>(&f), sizeof f);
  }
  json header = {{"inputs",
                  {{{"name", "x"},
                    {"datatype", "FP32"},
                    {"shape", ref["input"]["shape"]},
                    {"parameters", {{"binary_data_size", raw.size()}}}}}},
                 {"outputs", outputs}};
  const auto text = header.dump();
  return {text + raw, {{"Inference-Header-Content-Length", std::to_string(text.size())}}};
}

Server classifier(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--model", model_path("classifier.pt"), "--model-name",
                                   "classifier"};
  args.insert(args.end(), extra.begin(), extra.end());
  return Server(args);
}

TEST(Triton, BinaryInputsAndOutputsGiveTheReferenceAnswer) {
  auto server = classifier();
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto [body, headers] = binary_body(
      {{{"name", "logits"}, {"parameters", {{"binary_data", true}}}}, {{"name", "label"}}});
  const auto res = server.post("/v2/models/classifier/infer", body, headers);
  ASSERT_EQ(res.status, 200) << res.body;
  ASSERT_TRUE(res.headers.count("inference-header-content-length")) << res.body;
  EXPECT_EQ(res.headers.at("content-type"), "application/octet-stream");
  const auto length = std::stoul(res.headers.at("inference-header-content-length"));
  const auto header = json::parse(res.body.substr(0, length));
  EXPECT_EQ(header["model_version"], "1");
  const auto ref = reference()["outputs"];
  ASSERT_EQ(header["outputs"].size(), 2u) << header.dump();
  const auto& logits = header["outputs"][0];
  EXPECT_EQ(logits["name"], "logits");
  EXPECT_EQ(logits["shape"], ref["logits"]["shape"]);
  const auto size = logits["parameters"]["binary_data_size"].get<std::size_t>();
  ASSERT_EQ(size, 9 * sizeof(float));
  ASSERT_EQ(res.body.size(), length + size);
  for (std::size_t i = 0; i < 9; ++i) {
    float f = 0;
    std::memcpy(&f, res.body.data() + length + i * sizeof f, sizeof f);
    EXPECT_NEAR(f, ref["logits"]["data"][i].get<double>(), 1e-5) << i;
  }
  EXPECT_EQ(header["outputs"][1]["name"], "label");
  EXPECT_EQ(header["outputs"][1]["data"], ref["label"]["data"]);

  // binary_data_output: every output binary, none in JSON.
  const auto [all_body, all_headers] = binary_body(json::array());
  json with_default = json::parse(
      all_body.substr(0, std::stoul(all_headers.at("Inference-Header-Content-Length"))));
  with_default.erase("outputs");
  with_default["parameters"] = {{"binary_data_output", true}};
  const auto text = with_default.dump();
  const auto all = server.post("/v2/models/classifier/infer",
                               text + all_body.substr(all_body.size() - 12 * sizeof(float)),
                               {{"Inference-Header-Content-Length", std::to_string(text.size())}});
  ASSERT_EQ(all.status, 200) << all.body;
  const auto all_length = std::stoul(all.headers.at("inference-header-content-length"));
  EXPECT_EQ(all.body.size(), all_length + 9 * sizeof(float) + 3 * sizeof(std::int64_t));
}

TEST(Triton, MalformedBinaryRequestsAre400AndTheServerServesOn) {
  auto server = classifier();
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto [body, headers] = binary_body(json::array());
  const auto json_size = std::stoul(headers.at("Inference-Header-Content-Length"));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {body.substr(0, body.size() - 4), std::to_string(json_size)},  // truncated tensor
      {body + "tail", std::to_string(json_size)},                    // unclaimed bytes
      {body, std::to_string(body.size() + 1)},                       // header past the body
      {body, "twelve"},
      {body, std::to_string(json_size - 1)},  // the JSON cut short
  };
  for (const auto& [b, length] : bad) {
    const auto res = server.post("/v2/models/classifier/infer", b,
                                 {{"Inference-Header-Content-Length", length}});
    EXPECT_EQ(res.status, 400) << length << ": " << res.body;
    EXPECT_TRUE(res.json().contains("error")) << res.body;
  }
  // tritonclient's request_compression_algorithm: refused with a reason, not as bad JSON.
  const auto gzip = server.post("/v2/models/classifier/infer", body,
                                {{"Inference-Header-Content-Length", std::to_string(json_size)},
                                 {"Content-Encoding", "gzip"}});
  EXPECT_EQ(gzip.status, 400);
  EXPECT_NE(gzip.json().value("error", "").find("Content-Encoding"), std::string::npos)
      << gzip.body;
  // Only infer takes a binary body.
  EXPECT_EQ(server
                .post("/v2/models/classifier/generate", R"({"text_input":"x"})",
                      {{"Inference-Header-Content-Length", "18"}})
                .status,
            400);
  EXPECT_EQ(server.post("/v2/models/classifier/infer", body, headers).status, 200);
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1) << "no worker was lost";
}

TEST(Triton, VersionsAreCheckedAndAnswered) {
  auto server = classifier();
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto [body, headers] = binary_body(json::array());
  const auto one = server.post("/v2/models/classifier/versions/1/infer", body, headers);
  EXPECT_EQ(one.status, 200) << one.body;
  const auto two = server.post("/v2/models/classifier/versions/2/infer", body, headers);
  EXPECT_EQ(two.status, 404) << two.body;
  EXPECT_NE(two.json().value("error", "").find("version '2'"), std::string::npos) << two.body;
  EXPECT_EQ(server.get("/v2/models/classifier/versions/1").status, 200);
  EXPECT_EQ(server.get("/v2/models/classifier/versions/3/ready").status, 404);
  EXPECT_EQ(server.get("/v2/models/classifier").json()["versions"], json({"1"}));
}

TEST(Triton, StatisticsCountWhatRanTheModel) {
  auto server = classifier();
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto [body, headers] = binary_body(json::array());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(server.post("/v2/models/classifier/infer", body, headers).status, 200);
  }
  // The worker refuses a wrong dtype: a failed inference.
  const json wrong = {
      {"inputs",
       {{{"name", "x"}, {"datatype", "INT32"}, {"shape", {1, 4}}, {"data", {1, 2, 3, 4}}}}}};
  EXPECT_EQ(server.post("/v2/models/classifier/infer", wrong.dump()).status, 400);
  for (const char* target : {"/v2/models/stats", "/v2/models/classifier/stats",
                             "/v2/models/classifier/versions/1/stats"}) {
    const auto res = server.get(target);
    ASSERT_EQ(res.status, 200) << target << ": " << res.body;
    const auto stats = res.json()["model_stats"];
    ASSERT_EQ(stats.size(), 1u) << res.body;
    const auto& m = stats[0];
    EXPECT_EQ(m["name"], "classifier");
    EXPECT_EQ(m["version"], "1");
    EXPECT_EQ(m["inference_count"], 3);
    EXPECT_EQ(m["execution_count"], 3);
    const auto& s = m["inference_stats"];
    EXPECT_EQ(s["success"]["count"], 3);
    EXPECT_EQ(s["fail"]["count"], 1);
    EXPECT_EQ(s["queue"]["count"], 3);
    EXPECT_EQ(s["compute_infer"]["count"], 3);
    EXPECT_GT(s["compute_infer"]["ns"].get<std::uint64_t>(), 0u);
    EXPECT_GE(s["success"]["ns"].get<std::uint64_t>(),
              s["compute_infer"]["ns"].get<std::uint64_t>());
    ASSERT_EQ(m["batch_stats"].size(), 1u);
    EXPECT_EQ(m["batch_stats"][0]["batch_size"], 1);
    EXPECT_EQ(m["batch_stats"][0]["compute_infer"]["count"], 3);
  }
  EXPECT_EQ(server.get("/v2/models/other/stats").status, 404);
}

TEST(Triton, TheServerListsItsExtensions) {
  auto server = classifier();
  const auto meta = server.get("/v2").json();
  for (const char* ext : {"binary_tensor_data", "classification", "parameters", "schedule_policy",
                          "statistics", "generate"}) {
    EXPECT_NE(std::find(meta["extensions"].begin(), meta["extensions"].end(), ext),
              meta["extensions"].end())
        << ext;
  }
}

#endif

}  // namespace
}  // namespace respawn::test
