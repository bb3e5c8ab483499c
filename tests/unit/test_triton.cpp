// Tests for Triton's binary tensor data extension (supervisor/http/triton.hpp): requests whose
// body is a JSON header and raw tensor bytes, and answers built the same way.
#include "http/triton.hpp"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <gtest/gtest.h>

namespace respawn::triton {
namespace {

using nlohmann::json;

std::string floats(std::initializer_list<float> values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.begin(), bytes.size());
  return bytes;
}

HttpRequest binary_request(const json& header, const std::string& raw) {
  HttpRequest request{http::verb::post, "/v2/models/m/infer", 11};
  const auto text = header.dump();
  request.set(kHeaderLength, std::to_string(text.size()));
  request.body() = text + raw;
  return request;
}

json binary_input(const std::string& name, const char* type, json shape, std::size_t size) {
  return {{"name", name},
          {"datatype", type},
          {"shape", std::move(shape)},
          {"parameters", {{"binary_data_size", size}}}};
}

TEST(TritonBinary, TheHeaderLengthIsReadAndChecked) {
  HttpRequest plain{http::verb::post, "/", 11};
  plain.body() = "{}";
  EXPECT_FALSE(json_header_length(plain)->has_value());
  auto request = binary_request({{"inputs", json::array()}}, "abcd");
  ASSERT_TRUE(json_header_length(request));
  EXPECT_EQ(json_header_length(request)->value(), request.body().size() - 4);
  for (const char* bad : {"", "x", "-1", "12a", "99999999999999999999999", "1000"}) {
    request.set(kHeaderLength, bad);
    EXPECT_FALSE(json_header_length(request)) << bad;
  }
}

TEST(TritonBinary, BinaryInputsTakeTheirBytesInOrder) {
  const auto a = floats({1, 2, 3, 4}), b = floats({5, 6});
  const json inputs = {binary_input("a", "FP32", {2, 2}, a.size()),
                       binary_input("b", "FP32", {2}, b.size())};
  std::string blob;
  auto packed = pack_inputs(inputs, a + b, blob);
  ASSERT_TRUE(packed) << packed.error().message;
  // b lies 16 bytes into the body, off a 64-byte boundary: both are copied, aligned, to the blob.
  EXPECT_FALSE(packed->in_place);
  const auto& metas = packed->tensors;
  ASSERT_EQ(metas.size(), 2u);
  EXPECT_EQ(blob.substr(metas[0].offset, metas[0].nbytes), a);
  EXPECT_EQ(metas[1].offset % kTensorAlign, 0u);
  EXPECT_EQ(blob.substr(metas[1].offset, metas[1].nbytes), b);
  EXPECT_EQ(metas[1].shape, (std::vector<std::int64_t>{2}));
}

// The common case, an image or two: the body's bytes are the blob as they are, nothing copied.
TEST(TritonBinary, AlignedBinaryInputsStayInTheBody) {
  std::string sixteen;
  for (int i = 0; i < 16; ++i) sixteen += floats({static_cast<float>(i)});
  const auto b = floats({5, 6});
  for (const bool two : {false, true}) {
    const json inputs =
        two ? json{binary_input("a", "FP32", {16}, 64), binary_input("b", "FP32", {2}, 8)}
            : json{binary_input("a", "FP32", {16}, 64)};
    const std::string raw = two ? sixteen + b : sixteen;
    std::string blob;
    auto packed = pack_inputs(inputs, raw, blob);
    ASSERT_TRUE(packed) << packed.error().message;
    EXPECT_TRUE(packed->in_place);
    EXPECT_TRUE(blob.empty());
    ASSERT_EQ(packed->tensors.size(), two ? 2u : 1u);
    EXPECT_EQ(packed->tensors[0].offset, 0u);
    EXPECT_EQ(raw.substr(0, packed->tensors[0].nbytes), sixteen);
    if (two) {
      EXPECT_EQ(packed->tensors[1].offset, 64u);
      EXPECT_EQ(raw.substr(64, packed->tensors[1].nbytes), b);
    }
  }
  // Still checked as ever: a size that runs past the body is refused.
  std::string blob;
  EXPECT_FALSE(pack_inputs(json{binary_input("a", "FP32", {32}, 128)}, sixteen, blob));
}

TEST(TritonBinary, JsonAndBinaryInputsMix) {
  const auto b = floats({5, 6});
  const json inputs = {{{"name", "a"}, {"datatype", "INT32"}, {"shape", {3}}, {"data", {1, 2, 3}}},
                       binary_input("b", "FP32", {2}, b.size())};
  std::string blob;
  auto packed = pack_inputs(inputs, b, blob);
  ASSERT_TRUE(packed) << packed.error().message;
  EXPECT_FALSE(packed->in_place);  // a JSON input has no bytes in the body
  EXPECT_EQ(packed->tensors[0].nbytes, 12u);
  EXPECT_EQ(blob.substr(packed->tensors[1].offset, 8), b);
}

TEST(TritonBinary, MalformedBinaryInputsAreRefusedByName) {
  const auto four = floats({1, 2, 3, 4});
  const std::pair<json, std::string> cases[] = {
      // the size does not match the shape
      {json{binary_input("a", "FP32", {3}, 16)}, four},
      // runs past the body
      {json{binary_input("a", "FP32", {8}, 32)}, four},
      // bytes no input claims
      {json{binary_input("a", "FP32", {2}, 8)}, four},
      // both data and binary_data_size
      {json{{{"name", "a"},
             {"datatype", "FP32"},
             {"shape", {4}},
             {"data", {1, 2, 3, 4}},
             {"parameters", {{"binary_data_size", 16}}}}},
       four},
      // a negative or non-integer size
      {json{binary_input("a", "FP32", {4}, 16)}, four},
      // shared memory
      {json{{{"name", "a"},
             {"datatype", "FP32"},
             {"shape", {4}},
             {"parameters", {{"shared_memory_region", "r"}}}}},
       ""},
  };
  std::size_t i = 0;
  for (auto [inputs, raw] : cases) {
    if (i == 4) inputs[0]["parameters"]["binary_data_size"] = -16;
    std::string blob;
    const auto metas = pack_inputs(inputs, raw, blob);
    ASSERT_FALSE(metas) << "case " << i;
    EXPECT_EQ(metas.error().kind, ErrorKind::bad_input);
    if (i != 2) {  // unclaimed bytes belong to no input
      EXPECT_NE(metas.error().message.find("'a'"), std::string::npos) << metas.error().message;
    }
    ++i;
  }
  std::string blob;
  EXPECT_FALSE(pack_inputs(json::array(), "", blob));
  // Binary bytes with no binary input at all.
  EXPECT_FALSE(pack_inputs(
      json{{{"name", "a"}, {"datatype", "FP32"}, {"shape", {1}}, {"data", {1}}}}, "xx", blob));
}

TEST(TritonBinary, OutputSelection) {
  auto none = requested_outputs(json::object());
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->outputs.empty());
  EXPECT_FALSE(none->binary_default);
  auto some = requested_outputs(
      {{"parameters", {{"binary_data_output", true}}},
       {"outputs", {{{"name", "x"}}, {{"name", "y"}, {"parameters", {{"binary_data", false}}}}}}});
  ASSERT_TRUE(some);
  EXPECT_TRUE(some->binary_default);
  ASSERT_EQ(some->outputs.size(), 2u);
  EXPECT_FALSE(some->outputs[0].binary.has_value());
  EXPECT_EQ(some->outputs[1].binary, false);
  for (const json& bad :
       {json{{"outputs", "x"}}, json{{"outputs", {{{"nom", "x"}}}}},
        json{{"outputs", {{{"name", "x"}, {"parameters", {{"binary_data", 1}}}}}}},
        json{{"outputs", {{{"name", "x"}, {"parameters", {{"classification", -1}}}}}}},
        json{{"outputs", {{{"name", "x"}, {"parameters", {{"classification", 1.5}}}}}}},
        json{{"outputs", {{{"name", "x"}, {"parameters", {{"classification", "3"}}}}}}},
        json{{"outputs", {{{"name", "x"}, {"parameters", {{"classification", 1ull << 32}}}}}}},
        json{{"parameters", {{"binary_data_output", "yes"}}}}}) {
    EXPECT_FALSE(requested_outputs(bad)) << bad.dump();
  }
  auto classes =
      requested_outputs({{"outputs", {{{"name", "x"}, {"parameters", {{"classification", 3}}}}}}});
  ASSERT_TRUE(classes) << classes.error().message;
  EXPECT_EQ(classes->outputs[0].classification, 3u);
}

// A worker answer with outputs "x" (FP32 [2]) and "y" (INT64 [1]).
struct WorkerAnswer {
  std::string blob;
  json meta;
  WorkerAnswer() {
    const std::int64_t seven = 7;
    meta["outputs"] = {
        to_json(append_tensor(blob, "x", DataType::FP32, {2}, floats({1.5f, -2}))),
        to_json(append_tensor(blob, "y", DataType::INT64, {1},
                              std::string_view(reinterpret_cast<const char*>(&seven), 8)))};
  }
};

TEST(TritonBinary, AnswersAreJsonUnlessAnOutputIsBinary) {
  WorkerAnswer w;
  auto res = infer_response({{"model_name", "m"}}, w.meta, w.blob, {});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->find(kHeaderLength), res->end());
  const auto body = json::parse(res->body());
  EXPECT_EQ(body["outputs"][0]["data"], json({1.5, -2.0}));
  EXPECT_EQ(body["outputs"][1]["data"], json({7}));
  EXPECT_EQ(body["model_name"], "m");
}

TEST(TritonBinary, BinaryOutputsFollowTheJsonHeaderInTheAskedOrder) {
  WorkerAnswer w;
  OutputSelection selection;
  selection.outputs = {{"y", true, {}}, {"x", std::nullopt, {}}};  // x as JSON (default)
  auto res = infer_response({{"model_name", "m"}}, w.meta, w.blob, selection);
  ASSERT_TRUE(res) << res.error().message;
  const auto length = std::stoul(std::string((*res)[kHeaderLength]));
  const auto header = json::parse(res->body().substr(0, length));
  ASSERT_EQ(header["outputs"].size(), 2u);
  EXPECT_EQ(header["outputs"][0]["name"], "y");
  EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], 8);
  EXPECT_FALSE(header["outputs"][0].contains("data"));
  EXPECT_EQ(header["outputs"][1]["data"], json({1.5, -2.0}));
  ASSERT_EQ(res->body().size(), length + 8);
  std::int64_t y = 0;
  std::memcpy(&y, res->body().data() + length, 8);
  EXPECT_EQ(y, 7);
  EXPECT_EQ((*res)[http::field::content_type], "application/octet-stream");

  selection = {{}, true};  // every output binary
  res = infer_response({}, w.meta, w.blob, selection);
  ASSERT_TRUE(res);
  const auto all = std::stoul(std::string((*res)[kHeaderLength]));
  EXPECT_EQ(res->body().size(), all + 16);
  EXPECT_EQ(res->body().substr(all, 8), floats({1.5f, -2}));

  selection.outputs = {{"z", std::nullopt, {}}};
  res = infer_response({}, w.meta, w.blob, selection);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().kind, ErrorKind::bad_input);
}

template <typename T>
std::string raw(std::initializer_list<T> values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  std::memcpy(bytes.data(), values.begin(), bytes.size());
  return bytes;
}

std::vector<std::string> elements(const Classes& c) {
  const auto e = bytes_elements(c.bytes);
  return e ? std::vector<std::string>(e->begin(), e->end()) : std::vector<std::string>{"bad"};
}

Classes classes_of(DataType type, std::vector<std::int64_t> shape, const std::string& bytes,
                   std::uint32_t k, const std::vector<std::string>& labels = {}) {
  auto c = classify({"x", type, std::move(shape), 0, bytes.size()}, bytes, k, labels);
  EXPECT_TRUE(c) << c.error().message;
  return c ? *c : Classes{};
}

using Strings = std::vector<std::string>;

TEST(TritonClassification, EachBatchRowGivesItsHighestValuesAsTritonWritesThem) {
  // [2, 4]: each row ranked apart; equal values by the lower index; floats as "%f".
  const auto c = classes_of(DataType::FP32, {2, 4}, floats({1.5f, -2, 3, 4.25f, 0, 0, 7, -1}), 2);
  EXPECT_EQ(c.shape, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(elements(c), (Strings{"4.250000:3", "3.000000:2", "7.000000:2", "0.000000:0"}));
  // Labels name the classes they have; a class past the file or on an empty line goes without.
  const auto named = classes_of(DataType::FP32, {1, 4}, floats({1, 2, 3, 4}), 3, {"a", "", "c"});
  EXPECT_EQ(elements(named), (Strings{"4.000000:3", "3.000000:2:c", "2.000000:1"}));
  // Rank 1 is one row; a count past the row's length gives the whole row.
  const auto one = classes_of(DataType::FP32, {3}, floats({0.5f, 0.25f, 1}), 10);
  EXPECT_EQ(one.shape, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(elements(one), (Strings{"1.000000:2", "0.500000:0", "0.250000:1"}));
  // The rows of a higher rank are everything after the batch dimension.
  const auto cube = classes_of(DataType::FP32, {1, 2, 2}, floats({1, 4, 3, 2}), 2);
  EXPECT_EQ(cube.shape, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(elements(cube), (Strings{"4.000000:1", "3.000000:2"}));
}

TEST(TritonClassification, ValuesKeepTheirTypeAndNanRanksLast) {
  // Integers compare exactly (2^60 + 1 and 2^60 are one double) and print as integers.
  const std::int64_t big = std::int64_t{1} << 60;
  const auto ints = classes_of(DataType::INT64, {2}, raw<std::int64_t>({big, big + 1}), 2);
  EXPECT_EQ(elements(ints), (Strings{std::to_string(big + 1) + ":1", std::to_string(big) + ":0"}));
  const auto small = classes_of(DataType::INT8, {3}, raw<std::int8_t>({-5, 100, 3}), 1);
  EXPECT_EQ(elements(small), (Strings{"100:1"}));
  const auto u8 = classes_of(DataType::UINT8, {2}, raw<std::uint8_t>({200, 7}), 1);
  EXPECT_EQ(elements(u8), (Strings{"200:0"}));
  const auto halves =
      classes_of(DataType::FP16, {3},
                 raw<std::uint16_t>({to_fp16_bits(0.5), to_fp16_bits(-1), to_fp16_bits(2)}), 3);
  EXPECT_EQ(elements(halves), (Strings{"2.000000:2", "0.500000:0", "-1.000000:1"}));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const auto nans = classes_of(DataType::FP64, {4}, raw<double>({nan, -inf, 1, nan}), 4);
  ASSERT_EQ(elements(nans).size(), 4u);
  EXPECT_EQ(elements(nans)[0], "1.000000:2");
  EXPECT_EQ(elements(nans)[1], "-inf:1");
  EXPECT_EQ(elements(nans)[2].substr(elements(nans)[2].find(':')), ":0");
  EXPECT_EQ(elements(nans)[3].substr(elements(nans)[3].find(':')), ":3");
}

TEST(TritonClassification, NoRowsGiveNoClassesAndStringsAreRefused) {
  const auto none = classes_of(DataType::FP32, {0, 5}, "", 3);
  EXPECT_EQ(none.shape, (std::vector<std::int64_t>{0, 3}));
  EXPECT_TRUE(none.bytes.empty());
  // No rows of 2^39 elements each, every class asked for: nothing is allocated for them.
  const auto huge = classes_of(DataType::FP32, {0, std::int64_t{1} << 39}, "", UINT32_MAX);
  EXPECT_EQ(huge.shape, (std::vector<std::int64_t>{0, UINT32_MAX}));
  // At most 2^20 classes in an answer: 2 rows of 2^19 + 1 are refused before any is ranked.
  const auto half = std::size_t{1} << 19;
  const std::string big((2 * half + 2) * sizeof(float), '\0');
  const auto over =
      classify({"x", DataType::FP32, {2, static_cast<std::int64_t>(half + 1)}, 0, big.size()}, big,
               UINT32_MAX, {});
  ASSERT_FALSE(over);
  EXPECT_NE(over.error().message.find("more than the 1048576 classes"), std::string::npos);
  std::string strings;
  append_bytes_element(strings, "a");
  for (const auto type : {DataType::BYTES, DataType::BOOL}) {
    const std::string bytes = type == DataType::BYTES ? strings : std::string(1, '\1');
    const auto refused = classify({"x", type, {1}, 0, bytes.size()}, bytes, 1, {});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind, ErrorKind::bad_input);
    EXPECT_NE(refused.error().message.find("classification needs a numeric output"),
              std::string::npos);
  }
}

TEST(TritonClassification, AClassifiedOutputIsBytesInJsonOrBinary) {
  WorkerAnswer w;  // x: FP32 [2] {1.5, -2}
  OutputSelection selection;
  selection.outputs = {{"x", std::nullopt, {}, 1}, {"y", std::nullopt, {}, 0}};
  auto res = infer_response({}, w.meta, w.blob, selection, {"first", "second"});
  ASSERT_TRUE(res) << res.error().message;
  const auto body = json::parse(res->body());
  EXPECT_EQ(
      body["outputs"][0],
      json({{"name", "x"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {"1.500000:0:first"}}}));
  EXPECT_EQ(body["outputs"][1]["data"], json({7}));

  selection.outputs = {{"x", true, {}, 2}};
  res = infer_response({}, w.meta, w.blob, selection);
  ASSERT_TRUE(res) << res.error().message;
  const auto length = std::stoul(std::string((*res)[kHeaderLength]));
  const auto header = json::parse(res->body().substr(0, length));
  EXPECT_EQ(header["outputs"][0]["datatype"], "BYTES");
  EXPECT_EQ(header["outputs"][0]["shape"], json({2}));
  std::string want;
  append_bytes_element(want, "1.500000:0");
  append_bytes_element(want, "-2.000000:1");
  EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], want.size());
  EXPECT_EQ(res->body().substr(length), want);
}

TEST(TritonClassification, LabelsAreReadOnePerLine) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("respawn-labels-" + std::to_string(::getpid()) + ".txt");
  {
    std::ofstream out(path, std::ios::binary);
    out << "cat\r\ndog\n\nbird";
  }
  const auto labels = read_labels(path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(labels) << labels.error().message;
  EXPECT_EQ(*labels, (Strings{"cat", "dog", "", "bird"}));
  EXPECT_FALSE(read_labels(path.string()));
}

TEST(TritonModelConfig, ABatchFirstModelLeavesTheBatchDimensionOut) {
  const json info = json::parse(R"({"device":"cpu",
    "inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],
    "outputs":[{"name":"logits","datatype":"FP32","shape":[-1,3]},
               {"name":"label","datatype":"INT64","shape":[-1]},
               {"name":"names","datatype":"BYTES","shape":[-1,2]}]})");
  const auto config =
      model_config(info, {"classifier", "pytorch_torchscript", 8, 1000, "/etc/x/labels.txt"});
  EXPECT_EQ(config["name"], "classifier");
  EXPECT_EQ(config["platform"], "pytorch_torchscript");
  EXPECT_EQ(config["max_batch_size"], 8);
  EXPECT_EQ(config["dynamic_batching"]["max_queue_delay_microseconds"], 1000);
  EXPECT_EQ(config["input"],
            json::parse(R"([{"name":"x","data_type":"TYPE_FP32","dims":[4],"format":"FORMAT_NONE",
              "is_shape_tensor":false,"allow_ragged_batch":false,"optional":false}])"));
  const auto& out = config["output"];
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]["dims"], json({3}));
  EXPECT_EQ(out[0]["label_filename"], "labels.txt");
  // One value per item: dims [1] reshaped to [], as Triton writes it.
  EXPECT_EQ(out[1]["dims"], json({1}));
  EXPECT_EQ(out[1]["reshape"]["shape"], json::array());
  EXPECT_EQ(out[1]["data_type"], "TYPE_INT64");
  EXPECT_EQ(out[2]["data_type"], "TYPE_STRING");
  EXPECT_EQ(config["instance_group"][0]["kind"], "KIND_CPU");
  EXPECT_EQ(config["model_transaction_policy"]["decoupled"], false);
}

TEST(TritonModelConfig, AFixedFirstDimensionOrNoSpecIsNotBatched) {
  const json fixed = json::parse(R"({"device":"cuda",
    "inputs":[{"name":"x","datatype":"FP32","shape":[2,4]}],
    "outputs":[{"name":"y","datatype":"FP32","shape":[-1,3]}]})");
  auto config = model_config(fixed, {"m", "pytorch_torchscript", 8, 1000, ""});
  EXPECT_EQ(config["max_batch_size"], 0);
  EXPECT_FALSE(config.contains("dynamic_batching"));
  EXPECT_EQ(config["input"][0]["dims"], json({2, 4}));
  EXPECT_EQ(config["output"][0]["dims"], json({-1, 3}));
  EXPECT_EQ(config["output"][0]["label_filename"], "");
  EXPECT_EQ(config["instance_group"][0]["kind"], "KIND_GPU");
  config = model_config(json::object(), {"m", "pytorch_torchscript", 8, 1000, ""});
  EXPECT_EQ(config["max_batch_size"], 0);
  EXPECT_EQ(config["input"], json::array());
  // Batched, but one request at a time: no dynamic batching.
  const json batched = json::parse(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[-1]}]})");
  config = model_config(batched, {"m", "pytorch_torchscript", 1, 1000, ""});
  EXPECT_EQ(config["max_batch_size"], 1);
  EXPECT_FALSE(config.contains("dynamic_batching"));
}

}  // namespace
}  // namespace respawn::triton
