// The KServe datatypes beyond the first eight through the real binaries (models/datatypes.pt):
// FP16 and BF16 rounding, UINT16/32/64 to their limits, BYTES as List[str] both ways (also
// shared by requests batched together), and a model without respawn.json
// (models/schema_only.pt) whose metadata and input order come from forward's schema.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.hpp"

namespace respawn::test {
namespace {

using nlohmann::json;

#if RESPAWN_HAS_WORKER

json tensor(const std::string& name, const std::string& datatype, const json& data) {
  return {{"name", name},
          {"datatype", datatype},
          {"shape", {static_cast<int>(data.size())}},
          {"data", data}};
}

// The datatypes model's six inputs, each with the given values.
json datatypes_request(const json& half, const json& bfloat, const json& u16, const json& u32,
                       const json& u64, const json& text) {
  return {{"inputs",
           {tensor("half", "FP16", half), tensor("bfloat", "BF16", bfloat),
            tensor("u16", "UINT16", u16), tensor("u32", "UINT32", u32),
            tensor("u64", "UINT64", u64), tensor("text", "BYTES", text)}}};
}

// Each output of a KServe answer by name.
std::map<std::string, json> outputs_by_name(const json& answer) {
  std::map<std::string, json> out;
  for (const auto& o : answer["outputs"]) out[o["name"].get<std::string>()] = o;
  return out;
}

TEST(Datatypes, EveryNewDatatypeGoesThroughTheModel) {
  Server server({"--model", model_path("datatypes.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const std::string nul("a\0b", 3);
  const auto request = datatypes_request(
      {2048, 0.1, -1.5, 65504}, {0.333333, 1.5, -256, 3e38}, {0, 65535}, {0, 4294967295u},
      {json(0), json(18446744073709551615u), json(9223372036854775808u)},
      {"h\u00e9llo w\u00f6rld \u2713", "", nul, "\u65e5\u672c\u8a9e text"});
  const auto res = server.post("/v2/models/datatypes/infer", request.dump());
  ASSERT_EQ(res.status, 200) << res.body;
  auto out = outputs_by_name(res.json());
  ASSERT_EQ(out.size(), 6u) << res.body;

  // FP16 + 1: 2049 is no FP16 value and rounds to the even 2048; 65505 rounds to 65504. Values
  // print as the shortest decimal of the same FP16 (1.1, not 1.099609375).
  EXPECT_EQ(out["half_plus_one"]["datatype"], "FP16");
  EXPECT_EQ(out["half_plus_one"]["shape"], json({4}));
  EXPECT_EQ(out["half_plus_one"]["data"].dump(), "[2048.0,1.1,-0.5,65504.0]");
  // BF16 * 2: 0.333333 was stored as 0.333984375, so 0.66796875 (shortest: 0.668); 3e38 * 2 is
  // past BF16's range: infinity, which JSON shows as null.
  EXPECT_EQ(out["bfloat_times_two"]["datatype"], "BF16");
  EXPECT_EQ(out["bfloat_times_two"]["data"].dump(), "[0.668,3.0,-512.0,null]");
  EXPECT_EQ(out["u16"]["datatype"], "UINT16");
  EXPECT_EQ(out["u16"]["data"].dump(), "[0,65535]");
  EXPECT_EQ(out["u32"]["datatype"], "UINT32");
  EXPECT_EQ(out["u32"]["data"].dump(), "[0,4294967295]");
  EXPECT_EQ(out["u64"]["datatype"], "UINT64");
  EXPECT_EQ(out["u64"]["shape"], json({3}));
  EXPECT_EQ(out["u64"]["data"].dump(), "[0,18446744073709551615,9223372036854775808]");
  // TorchScript's str.upper() changes ASCII letters only; the rest comes back byte for byte.
  EXPECT_EQ(out["text_upper"]["datatype"], "BYTES");
  EXPECT_EQ(out["text_upper"]["shape"], json({4}));
  EXPECT_EQ(out["text_upper"]["data"], json({"H\u00e9LLO W\u00f6RLD \u2713", "",
                                             std::string("A\0B", 3), "\u65e5\u672c\u8a9e TEXT"}));
}

TEST(Datatypes, MetadataAndRefusals) {
  Server server({"--model", model_path("datatypes.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto meta = server.get("/v2/models/datatypes").json();
  std::vector<std::string> types;
  for (const auto& in : meta["inputs"]) types.push_back(in["datatype"]);
  EXPECT_EQ(types,
            (std::vector<std::string>{"FP16", "BF16", "UINT16", "UINT32", "UINT64", "BYTES"}))
      << meta.dump();

  const auto post = [&](const json& request) {
    return server.post("/v2/models/datatypes/infer", request.dump());
  };
  const auto good = datatypes_request({1}, {1}, {1}, {1}, {1}, {"a"});
  const struct {
    const char* what;
    json request;
    const char* says;
  } cases[] = {
      {"FP16 past 65504", datatypes_request({65505}, {1}, {1}, {1}, {1}, {"a"}),
       "not a valid FP16"},
      {"BF16 past its range", datatypes_request({1}, {1e39}, {1}, {1}, {1}, {"a"}),
       "not a valid BF16"},
      {"UINT16 past 65535", datatypes_request({1}, {1}, {65536}, {1}, {1}, {"a"}),
       "not a valid UINT16"},
      {"a negative UINT64", datatypes_request({1}, {1}, {1}, {1}, {-1}, {"a"}),
       "not a valid UINT64"},
      {"a number as BYTES", datatypes_request({1}, {1}, {1}, {1}, {1}, {7}), "not a valid BYTES"},
  };
  for (const auto& c : cases) {
    const auto res = post(c.request);
    EXPECT_EQ(res.status, 400) << c.what << ": " << res.body;
    EXPECT_NE(res.body.find(c.says), std::string::npos) << c.what << ": " << res.body;
  }
  auto wrong_type = good;
  wrong_type["inputs"][0] = tensor("half", "FP32", {1});
  const auto res = post(wrong_type);
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_NE(res.body.find("must be FP16, got FP32"), std::string::npos) << res.body;
  EXPECT_EQ(post(good).status, 200);
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1);
}

// Requests share a forward: tensors are stacked, string lists concatenated, and each gets its
// own rows back.
TEST(Datatypes, RequestsWithStringsShareAForward) {
  Server server({"--model", model_path("datatypes.pt"), "--enable-fault-injection"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto body = [](int rows) {
    json half = json::array(), num = json::array(), text = json::array();
    for (int i = 0; i < rows; ++i) {
      half.push_back(rows * 10 + i);
      num.push_back(rows * 100 + i);
      text.push_back("r" + std::to_string(rows) + "-" + std::to_string(i) + "\u00e9");
    }
    return datatypes_request(half, half, num, num, num, text).dump();
  };
  std::vector<std::string> bodies;
  for (int rows = 1; rows <= 5; ++rows) bodies.push_back(body(rows));
  const auto answers =
      post_all_while_the_worker_sleeps(server, "/v2/models/datatypes/infer", body(1), bodies);
  int batched = 0;
  for (int rows = 1; rows <= 5; ++rows) {
    const auto& res = answers[static_cast<std::size_t>(rows - 1)];
    ASSERT_EQ(res.status, 200) << res.body;
    auto out = outputs_by_name(res.json());
    ASSERT_EQ(out["text_upper"]["data"].size(), static_cast<std::size_t>(rows)) << res.body;
    for (int i = 0; i < rows; ++i) {
      const auto k = static_cast<std::size_t>(i);
      EXPECT_EQ(out["text_upper"]["data"][k],
                "R" + std::to_string(rows) + "-" + std::to_string(i) + "\u00e9");
      EXPECT_EQ(out["u64"]["data"][k], rows * 100 + i);
      EXPECT_EQ(out["half_plus_one"]["data"][k], rows * 10 + i + 1);
    }
    if (batch_size(res) > 1) ++batched;
  }
  EXPECT_GT(batched, 0) << "no request shared a forward";
}

TEST(SchemaMetadata, AModelWithoutSpecListsForwardsArguments) {
  Server server({"--model", model_path("schema_only.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const auto meta = server.get("/v2/models/schema_only");
  ASSERT_EQ(meta.status, 200) << meta.body;
  const auto j = meta.json();
  const json want_inputs = {{{"name", "a"}, {"datatype", "FP32"}, {"shape", {-1}}},
                            {{"name", "b"}, {"datatype", "FP32"}, {"shape", {-1}}},
                            {{"name", "scale"}, {"datatype", "FP64"}, {"shape", {1}}},
                            {{"name", "tags"}, {"datatype", "BYTES"}, {"shape", {-1}}}};
  EXPECT_EQ(j["inputs"], want_inputs) << j.dump();
  const json want_outputs = {{{"name", "output__0"}, {"datatype", "FP32"}, {"shape", {-1}}},
                             {{"name", "output__1"}, {"datatype", "BYTES"}, {"shape", {-1}}}};
  EXPECT_EQ(j["outputs"], want_outputs) << j.dump();
}

TEST(SchemaMetadata, InputsArePassedInForwardsOrderByName) {
  Server server({"--model", model_path("schema_only.pt")});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  // Sent in reverse: forward still gets a, b, scale, tags. `scale` (a float argument) comes
  // from a one-element tensor, of any numeric datatype.
  json request = {{"inputs",
                   {tensor("tags", "BYTES", {"x", "\u00fc"}), tensor("scale", "FP32", {0.5}),
                    tensor("b", "FP32", {1, 2}), tensor("a", "FP32", {5, 10})}}};
  auto res = server.post("/v2/models/schema_only/infer", request.dump());
  ASSERT_EQ(res.status, 200) << res.body;
  auto out = outputs_by_name(res.json());
  EXPECT_EQ(out["output__0"]["data"], json({2.0, 4.0})) << res.body;
  EXPECT_EQ(out["output__1"]["datatype"], "BYTES");
  EXPECT_EQ(out["output__1"]["data"], json({"x!", "\u00fc!"})) << res.body;

  // A float argument takes exactly one element.
  request["inputs"][1] = tensor("scale", "FP64", {0.5, 2});
  res = server.post("/v2/models/schema_only/infer", request.dump());
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_NE(res.body.find("exactly one element"), std::string::npos) << res.body;
  EXPECT_EQ(server.metric("respawn_worker_starts_total"), 1);
}

#endif  // RESPAWN_HAS_WORKER

}  // namespace
}  // namespace respawn::test
