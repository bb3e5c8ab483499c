// Tests for the KServe <-> IPC tensor codec (common/respawn/tensor_codec.hpp).
#include "respawn/tensor_codec.hpp"

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace respawn {
namespace {

using nlohmann::json;

// Parsed from text, as the HTTP layer does, so numbers get the storage types a client's JSON
// really produces.
json one_input(const std::string& name, const std::string& datatype, const std::string& shape,
               const std::string& data) {
  return json::parse(R"([{"name":")" + name + R"(","datatype":")" + datatype + R"(","shape":)" +
                     shape + R"(,"data":)" + data + "}]");
}

template <typename T>
std::vector<T> values_at(const std::string& blob, const TensorMeta& m) {
  EXPECT_EQ(m.nbytes % sizeof(T), 0u);
  std::vector<T> out(m.nbytes / sizeof(T));
  EXPECT_LE(m.offset + m.nbytes, blob.size());
  std::memcpy(out.data(), blob.data() + m.offset, m.nbytes);
  return out;
}

// Packs one input and expects success; returns its metadata.
TensorMeta pack_one(const json& inputs, std::string& blob) {
  auto r = pack_kserve_inputs(inputs, blob);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  if (!r.ok()) return {};
  EXPECT_EQ(r->size(), 1u);
  return r->at(0);
}

Error pack_error(const json& inputs) {
  std::string blob;
  auto r = pack_kserve_inputs(inputs, blob);
  EXPECT_FALSE(r.ok());
  return r.ok() ? Error{} : r.error();
}

TEST(TensorCodec, ParseDatatypeAndSizes) {
  const std::pair<const char*, std::size_t> types[] = {
      {"BOOL", 1}, {"UINT8", 1}, {"UINT16", 2}, {"UINT32", 4}, {"UINT64", 8},
      {"INT8", 1}, {"INT16", 2}, {"INT32", 4},  {"INT64", 8},  {"FP16", 2},
      {"FP32", 4}, {"FP64", 8},  {"BF16", 2},   {"BYTES", 0},
  };
  for (const auto& [name, size] : types) {
    auto t = parse_datatype(name);
    ASSERT_TRUE(t.has_value()) << name;
    EXPECT_EQ(to_string(*t), name);
    EXPECT_EQ(element_size(*t), size) << name;
  }
  EXPECT_FALSE(parse_datatype("FP8").has_value());
  EXPECT_FALSE(parse_datatype("fp32").has_value());
  EXPECT_FALSE(parse_datatype("STRING").has_value());
  EXPECT_FALSE(parse_datatype("").has_value());
}

TEST(TensorCodec, PackBool) {
  std::string blob;
  const auto m = pack_one(one_input("b", "BOOL", "[2,2]", "[[true,false],[false,true]]"), blob);
  EXPECT_EQ(m.name, "b");
  EXPECT_EQ(m.datatype, DataType::BOOL);
  EXPECT_EQ(m.shape, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(m.nbytes, 4u);
  EXPECT_EQ(values_at<std::uint8_t>(blob, m), (std::vector<std::uint8_t>{1, 0, 0, 1}));
}

TEST(TensorCodec, PackUint8) {
  std::string blob;
  const auto m = pack_one(one_input("u", "UINT8", "[3]", "[0,128,255]"), blob);
  EXPECT_EQ(values_at<std::uint8_t>(blob, m), (std::vector<std::uint8_t>{0, 128, 255}));
}

TEST(TensorCodec, PackInt8) {
  std::string blob;
  const auto m = pack_one(one_input("i", "INT8", "[1,3]", "[[-128,0,127]]"), blob);
  EXPECT_EQ(values_at<std::int8_t>(blob, m), (std::vector<std::int8_t>{-128, 0, 127}));
}

TEST(TensorCodec, PackInt16) {
  std::string blob;
  const auto m = pack_one(one_input("i", "INT16", "[3]", "[-32768,1,32767]"), blob);
  EXPECT_EQ(m.nbytes, 6u);
  EXPECT_EQ(values_at<std::int16_t>(blob, m), (std::vector<std::int16_t>{-32768, 1, 32767}));
}

TEST(TensorCodec, PackInt32) {
  std::string blob;
  const auto m = pack_one(one_input("i", "INT32", "[2,1]", "[[-2147483648],[2147483647]]"), blob);
  EXPECT_EQ(m.nbytes, 8u);
  EXPECT_EQ(values_at<std::int32_t>(blob, m),
            (std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min(),
                                       std::numeric_limits<std::int32_t>::max()}));
}

TEST(TensorCodec, PackInt64) {
  std::string blob;
  const auto m = pack_one(
      one_input("i", "INT64", "[3]", "[-9223372036854775808,0,9223372036854775807]"), blob);
  EXPECT_EQ(m.nbytes, 24u);
  EXPECT_EQ(values_at<std::int64_t>(blob, m),
            (std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), 0,
                                       std::numeric_limits<std::int64_t>::max()}));
}

TEST(TensorCodec, PackFp32AcceptsIntegersAndFloats) {
  std::string blob;
  const auto m = pack_one(one_input("f", "FP32", "[2,2]", "[[0.5,-1.25],[3,1e10]]"), blob);
  EXPECT_EQ(m.nbytes, 16u);
  EXPECT_EQ(values_at<float>(blob, m), (std::vector<float>{0.5f, -1.25f, 3.0f, 1e10f}));
}

TEST(TensorCodec, PackFp64KeepsDoublePrecision) {
  std::string blob;
  const auto m = pack_one(one_input("d", "FP64", "[3]", "[0.1,-2,1e300]"), blob);
  EXPECT_EQ(m.nbytes, 24u);
  EXPECT_EQ(values_at<double>(blob, m), (std::vector<double>{0.1, -2.0, 1e300}));
}

TEST(TensorCodec, NestedAndFlatDataPackIdentically) {
  std::string flat_blob, nested_blob;
  const auto a = pack_one(one_input("x", "INT32", "[2,3]", "[1,2,3,4,5,6]"), flat_blob);
  const auto b = pack_one(one_input("x", "INT32", "[2,3]", "[[1,2,3],[4,5,6]]"), nested_blob);
  EXPECT_EQ(flat_blob, nested_blob);
  EXPECT_EQ(a.nbytes, b.nbytes);
  EXPECT_EQ(values_at<std::int32_t>(nested_blob, b), (std::vector<std::int32_t>{1, 2, 3, 4, 5, 6}));
}

TEST(TensorCodec, ScalarAndEmptyShapes) {
  std::string blob;
  const auto scalar = pack_one(one_input("s", "INT64", "[]", "[5]"), blob);
  EXPECT_EQ(scalar.nbytes, 8u);
  EXPECT_EQ(values_at<std::int64_t>(blob, scalar), (std::vector<std::int64_t>{5}));

  std::string empty_blob;
  const auto empty = pack_one(one_input("e", "FP32", "[0,4]", "[]"), empty_blob);
  EXPECT_EQ(empty.nbytes, 0u);
}

TEST(TensorCodec, ElementCountMismatchNamesTheTensor) {
  const Error e = pack_error(one_input("my_input", "FP32", "[2,2]", "[1,2,3]"));
  EXPECT_EQ(e.kind, ErrorKind::bad_input);
  EXPECT_NE(e.message.find("my_input"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("4"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("3"), std::string::npos) << e.message;

  const Error more = pack_error(one_input("other", "FP32", "[2]", "[[1,2],[3]]"));
  EXPECT_NE(more.message.find("other"), std::string::npos) << more.message;
}

TEST(TensorCodec, OutOfRangeAndWrongKindValuesAreRejected) {
  struct Case {
    const char* datatype;
    const char* data;
  };
  const Case cases[] = {
      {"UINT8", "[256]"},
      {"UINT8", "[-1]"},
      {"UINT8", "[1.0]"},
      {"INT8", "[128]"},
      {"INT8", "[-129]"},
      {"INT16", "[32768]"},
      {"INT16", "[-32769]"},
      {"INT32", "[2147483648]"},
      {"INT32", "[-2147483649]"},
      {"INT32", "[1.5]"},
      {"INT32", "[true]"},
      {"INT32", "[\"7\"]"},
      {"INT64", "[9223372036854775808]"},
      {"INT64", "[18446744073709551615]"},
      {"BOOL", "[1]"},
      {"BOOL", "[0]"},
      {"BOOL", "[\"true\"]"},
      {"FP32", "[\"1.0\"]"},
      {"FP32", "[true]"},
      {"FP64", "[null]"},
      {"FP64", "[{}]"},
  };
  for (const auto& c : cases) {
    const Error e = pack_error(one_input("t", c.datatype, "[1]", c.data));
    EXPECT_EQ(e.kind, ErrorKind::bad_input) << c.datatype << " " << c.data;
    EXPECT_NE(e.message.find("'t'"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find(c.datatype), std::string::npos) << e.message;
  }
}

TEST(TensorCodec, ErrorNamesTheElementIndex) {
  const Error e = pack_error(one_input("x", "UINT8", "[3]", "[1,2,300]"));
  EXPECT_NE(e.message.find("element 2"), std::string::npos) << e.message;
}

TEST(TensorCodec, Fp32OutOfRangeIsRejected) {
  for (const char* data : {"[1e39]", "[-1e39]", "[3.5e38]"}) {
    std::string blob;
    auto r = pack_kserve_inputs(one_input("big", "FP32", "[1]", data), blob);
    EXPECT_FALSE(r.ok()) << data << " was packed as "
                         << (r.ok() ? tensor_to_kserve_json(r->at(0), blob).dump() : "");
  }
  // The largest float itself is fine.
  std::string blob;
  EXPECT_TRUE(
      pack_kserve_inputs(one_input("max", "FP32", "[1]", "[3.4028234663852886e38]"), blob).ok());
}

TEST(TensorCodec, UnsupportedDatatype) {
  for (const char* dt : {"FP8", "STRING", "int32"}) {
    const Error e = pack_error(one_input("weird", dt, "[1]", "[1]"));
    EXPECT_EQ(e.kind, ErrorKind::bad_input);
    EXPECT_NE(e.message.find("weird"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("datatype"), std::string::npos) << e.message;
  }
}

TEST(TensorCodec, MissingData) {
  const Error e = pack_error(json::parse(R"([{"name":"nodata","datatype":"FP32","shape":[1]}])"));
  EXPECT_EQ(e.kind, ErrorKind::bad_input);
  EXPECT_NE(e.message.find("nodata"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("missing"), std::string::npos) << e.message;
}

TEST(TensorCodec, MalformedInputsAreRejected) {
  EXPECT_EQ(pack_error(json::array()).kind, ErrorKind::bad_input);
  EXPECT_EQ(pack_error(json::object()).kind, ErrorKind::bad_input);
  EXPECT_EQ(pack_error(json()).kind, ErrorKind::bad_input);
  // No name.
  EXPECT_EQ(pack_error(json::parse(R"([{"datatype":"FP32","shape":[1],"data":[1]}])")).kind,
            ErrorKind::bad_input);
  // Wrongly typed fields are errors, not exceptions.
  for (const char* text : {R"([{"name":"w","datatype":5,"shape":[1],"data":[1]}])",
                           R"([{"name":"w","datatype":"FP32","shape":{"a":1},"data":[1]}])",
                           R"([{"name":"w","datatype":"FP32","data":[1]}])",
                           R"([{"name":7,"datatype":"FP32","shape":[1],"data":[1]}])", R"([3])"}) {
    std::string blob;
    Result<std::vector<TensorMeta>> r = make_error(ErrorKind::internal, "not run");
    EXPECT_NO_THROW(r = pack_kserve_inputs(json::parse(text), blob)) << text;
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().kind, ErrorKind::bad_input) << text;
  }
  // Bad shapes.
  for (const char* shape : {"[-1]", "[1.5]", "\"2\"", "null", "[\"a\"]"}) {
    const Error e = pack_error(one_input("s", "FP32", shape, "[1]"));
    EXPECT_EQ(e.kind, ErrorKind::bad_input) << shape;
    EXPECT_NE(e.message.find("shape"), std::string::npos) << e.message;
  }
  // A shape whose element count overflows.
  const Error big = pack_error(one_input("big", "FP32", "[4294967296,4294967296]", "[1]"));
  EXPECT_NE(big.message.find("big"), std::string::npos) << big.message;
}

TEST(TensorCodec, MultipleTensorsStartAt64ByteAlignedOffsets) {
  const json inputs = json::parse(R"([
    {"name":"a","datatype":"UINT8","shape":[3],"data":[1,2,3]},
    {"name":"b","datatype":"FP64","shape":[10],"data":[0,1,2,3,4,5,6,7,8,9]},
    {"name":"c","datatype":"INT16","shape":[1],"data":[-7]},
    {"name":"d","datatype":"INT32","shape":[0],"data":[]},
    {"name":"e","datatype":"BOOL","shape":[1],"data":[true]}
  ])");
  std::string blob;
  auto r = pack_kserve_inputs(inputs, blob);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 5u);
  const auto& m = *r;
  EXPECT_EQ(m[0].offset, 0u);
  EXPECT_EQ(m[0].nbytes, 3u);
  EXPECT_EQ(m[1].offset, 64u);
  EXPECT_EQ(m[1].nbytes, 80u);
  EXPECT_EQ(m[2].offset, 192u);  // 64 + 80 = 144, rounded up
  EXPECT_EQ(m[2].nbytes, 2u);
  EXPECT_EQ(m[3].offset, 256u);
  EXPECT_EQ(m[3].nbytes, 0u);
  EXPECT_EQ(m[4].offset, 256u);  // an empty tensor takes no room
  for (const auto& t : m) EXPECT_EQ(t.offset % 64, 0u) << t.name;
  EXPECT_EQ(blob.size(), 257u);
  EXPECT_EQ(values_at<double>(blob, m[1])[9], 9.0);
  EXPECT_EQ(values_at<std::int16_t>(blob, m[2])[0], -7);
  // Padding is zeroed.
  for (std::size_t i = 3; i < 64; ++i) EXPECT_EQ(blob[i], '\0') << i;
}

TEST(TensorCodec, PackAppendsToAnExistingBlob) {
  std::string blob = "xyz";
  const auto m = pack_one(one_input("a", "UINT8", "[1]", "[9]"), blob);
  EXPECT_EQ(m.offset, 64u);
  EXPECT_EQ(blob.substr(0, 3), "xyz");
  EXPECT_EQ(static_cast<unsigned char>(blob[64]), 9);
}

TEST(TensorCodec, AppendTensorAligns) {
  std::string blob;
  const auto a = append_tensor(blob, "a", DataType::UINT8, {65}, std::string(65, '\x01'));
  const auto b = append_tensor(blob, "b", DataType::UINT8, {1}, "\x02");
  EXPECT_EQ(a.offset, 0u);
  EXPECT_EQ(a.nbytes, 65u);
  EXPECT_EQ(b.offset, 128u);
  EXPECT_EQ(b.nbytes, 1u);
  EXPECT_EQ(blob.size(), 129u);
  EXPECT_EQ(blob[128], '\x02');
}

TEST(TensorCodec, ElementCount) {
  EXPECT_EQ(element_count({}), 1u);
  EXPECT_EQ(element_count({2, 3, 4}), 24u);
  EXPECT_EQ(element_count({5, 0, 7}), 0u);
  EXPECT_FALSE(element_count({2, -1}).has_value());
  EXPECT_EQ(element_count({10, 10}, 100), 100u);
  EXPECT_FALSE(element_count({10, 11}, 100).has_value());
}

TEST(TensorCodec, ElementCountOverflowReturnsNullopt) {
  const std::int64_t big = std::int64_t{1} << 32;
  // 2^64 wraps to 0 in size_t; the check must catch it before multiplying.
  EXPECT_FALSE(element_count({big, big}).has_value());
  EXPECT_FALSE(element_count({big, big}, std::numeric_limits<std::size_t>::max()).has_value());
  EXPECT_FALSE(element_count({std::numeric_limits<std::int64_t>::max(), 3},
                             std::numeric_limits<std::size_t>::max())
                   .has_value());
  // Default limit is 2^40 elements.
  EXPECT_EQ(element_count({std::int64_t{1} << 40}), std::size_t{1} << 40);
  EXPECT_FALSE(element_count({(std::int64_t{1} << 40) + 1}).has_value());
}

TEST(TensorCodec, TensorMetaJsonRoundTrip) {
  TensorMeta m{"out", DataType::INT16, {2, 3}, 128, 12};
  auto back = tensor_meta_from_json(to_json(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->name, "out");
  EXPECT_EQ(back->datatype, DataType::INT16);
  EXPECT_EQ(back->shape, m.shape);
  EXPECT_EQ(back->offset, 128u);
  EXPECT_EQ(back->nbytes, 12u);
}

// A blob with one FP32 [2] tensor at offset 64 and the list describing it. Offsets and sizes
// are unsigned JSON numbers, as they are after crossing the IPC (see the BUG test below).
struct ListFixture {
  std::string blob = std::string(72, '\0');
  json entry = json::parse(R"({"name":"y","datatype":"FP32","shape":[2],"offset":64,"nbytes":8})");
};

TEST(TensorCodec, ParseTensorListAcceptsAFittingList) {
  ListFixture f;
  auto r = parse_tensor_list(json::array({f.entry}), f.blob);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->at(0).offset, 64u);
  EXPECT_EQ(r->at(0).nbytes, 8u);
  EXPECT_EQ(r->at(0).shape, (std::vector<std::int64_t>{2}));
}

TEST(TensorCodec, ParseTensorListRejectsOffsetPastTheBlob) {
  ListFixture f;
  f.entry["offset"] = 65u;  // 65 + 8 > 72
  auto r = parse_tensor_list(json::array({f.entry}), f.blob);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(parse_tensor_list(json::array({f.entry}), std::string(73, '\0')).ok());
  EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
  EXPECT_NE(r.error().message.find("'y'"), std::string::npos) << r.error().message;

  f.entry["offset"] = 1000u;
  EXPECT_FALSE(parse_tensor_list(json::array({f.entry}), f.blob).ok());
  // An offset so large that offset + nbytes wraps must still be caught.
  f.entry["offset"] = std::numeric_limits<std::uint64_t>::max() - 3;
  EXPECT_FALSE(parse_tensor_list(json::array({f.entry}), f.blob).ok());
}

TEST(TensorCodec, ParseTensorListRejectsNbytesPastTheBlob) {
  ListFixture f;
  f.entry["shape"] = json::array({4});
  f.entry["nbytes"] = 16u;  // matches the shape, but 64 + 16 > 72
  EXPECT_FALSE(parse_tensor_list(json::array({f.entry}), f.blob).ok());
  // The same entry fits a blob of 80 bytes.
  EXPECT_TRUE(parse_tensor_list(json::array({f.entry}), std::string(80, '\0')).ok());
}

TEST(TensorCodec, ParseTensorListRejectsNbytesNotMatchingShape) {
  ListFixture f;
  f.entry["nbytes"] = 4u;  // shape [2] of FP32 needs 8
  EXPECT_FALSE(parse_tensor_list(json::array({f.entry}), f.blob).ok());
  f.entry["nbytes"] = 0u;
  EXPECT_FALSE(parse_tensor_list(json::array({f.entry}), f.blob).ok());
  f.entry.erase("nbytes");
  EXPECT_FALSE(parse_tensor_list(json::array({f.entry}), f.blob).ok());
}

TEST(TensorCodec, ParseTensorListRejectsBadEntries) {
  ListFixture f;
  EXPECT_FALSE(parse_tensor_list(json::object(), f.blob).ok());
  json bad_type = f.entry;
  bad_type["datatype"] = "FP8";
  EXPECT_FALSE(parse_tensor_list(json::array({bad_type}), f.blob).ok());
  // One bad entry spoils the list.
  json bad_size = f.entry;
  bad_size["nbytes"] = 9u;
  EXPECT_FALSE(parse_tensor_list(json::array({f.entry, bad_size}), f.blob).ok());
  // An empty list is fine.
  auto empty = parse_tensor_list(json::array(), f.blob);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(TensorCodec, KServeJsonRoundTripForEveryType) {
  const json inputs = json::parse(R"([
    {"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]},
    {"name":"u8","datatype":"UINT8","shape":[2],"data":[0,255]},
    {"name":"i8","datatype":"INT8","shape":[2],"data":[-128,127]},
    {"name":"i16","datatype":"INT16","shape":[2],"data":[-300,300]},
    {"name":"i32","datatype":"INT32","shape":[1,2],"data":[[-70000,70000]]},
    {"name":"i64","datatype":"INT64","shape":[2],"data":[-9223372036854775808,9223372036854775807]},
    {"name":"f32","datatype":"FP32","shape":[2],"data":[0.5,-3]},
    {"name":"f64","datatype":"FP64","shape":[2],"data":[0.1,1e-300]},
    {"name":"u16","datatype":"UINT16","shape":[2],"data":[0,65535]},
    {"name":"u32","datatype":"UINT32","shape":[2],"data":[0,4294967295]},
    {"name":"u64","datatype":"UINT64","shape":[2],"data":[0,18446744073709551615]},
    {"name":"f16","datatype":"FP16","shape":[3],"data":[0.1,-2,65504]},
    {"name":"bf16","datatype":"BF16","shape":[3],"data":[1.5,-256,0.334]},
    {"name":"s","datatype":"BYTES","shape":[3],"data":["","a","h\u00e9llo \u2713"]}
  ])");
  std::string blob;
  auto metas = pack_kserve_inputs(inputs, blob);
  ASSERT_TRUE(metas.ok()) << metas.error().message;
  // Through the IPC list, as the worker would see it.
  json list = json::array();
  for (const auto& m : *metas) list.push_back(to_json(m));
  auto parsed = parse_tensor_list(json::parse(list.dump()), blob);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed->size(), inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const json out = tensor_to_kserve_json(parsed->at(i), blob);
    EXPECT_EQ(out["name"], inputs[i]["name"]);
    EXPECT_EQ(out["datatype"], inputs[i]["datatype"]);
    EXPECT_EQ(out["shape"], inputs[i]["shape"]);
    json expected_data = inputs[i]["data"];
    if (expected_data.size() == 1 && expected_data[0].is_array()) expected_data = expected_data[0];
    // Compare through the text form, which is what the client receives.
    EXPECT_EQ(json::parse(out["data"].dump()), expected_data) << out.dump();
  }
}

TEST(TensorCodec, Fp32RendersAsShortestDecimal) {
  std::string blob;
  const auto m = pack_one(one_input("f", "FP32", "[3]", "[0.1,0.2,1.1]"), blob);
  const json out = tensor_to_kserve_json(m, blob);
  EXPECT_EQ(out["data"].dump(), "[0.1,0.2,1.1]");
  EXPECT_EQ(out.dump(), R"({"data":[0.1,0.2,1.1],"datatype":"FP32","name":"f","shape":[3]})");
}

TEST(TensorCodec, NonFiniteFloatsRenderAsNull) {
  std::string blob;
  const float f[] = {std::numeric_limits<float>::infinity(),
                     std::numeric_limits<float>::quiet_NaN(), 1.5f};
  const auto m32 = append_tensor(blob, "f", DataType::FP32, {3},
                                 std::string_view(reinterpret_cast<const char*>(f), sizeof f));
  EXPECT_EQ(tensor_to_kserve_json(m32, blob)["data"].dump(), "[null,null,1.5]");
  const double d[] = {-std::numeric_limits<double>::infinity(), 2.5};
  const auto m64 = append_tensor(blob, "d", DataType::FP64, {2},
                                 std::string_view(reinterpret_cast<const char*>(d), sizeof d));
  EXPECT_EQ(tensor_to_kserve_json(m64, blob)["data"].dump(), "[null,2.5]");
}

TEST(TensorCodec, SignedOffsetsInATensorListAreReadOrRejected) {
  // Built in code, 64 and 8 are signed JSON integers: they must not silently become 0.
  const json entry = {
      {"name", "y"}, {"datatype", "FP32"}, {"shape", {2}}, {"offset", 64}, {"nbytes", 8}};
  auto meta = tensor_meta_from_json(entry);
  ASSERT_TRUE(meta.ok()) << meta.error().message;
  EXPECT_EQ(meta->offset, 64u);
  EXPECT_EQ(meta->nbytes, 8u);
  // A negative or non-numeric offset is malformed; it must not be read as offset 0.
  const std::string blob(72, '\0');
  for (const json& bad_offset : {json(-64), json("64"), json(64.5)}) {
    json list = json::parse(R"([{"name":"y","datatype":"FP32","shape":[2],"nbytes":8}])");
    list[0]["offset"] = bad_offset;
    EXPECT_FALSE(parse_tensor_list(list, blob).ok()) << bad_offset.dump();
  }
}

TEST(TensorCodec, UnsignedValuesBuiltInCodeAreAccepted) {
  // json{{"data", {1, 2}}} stores 1 and 2 as number_integer, not number_unsigned.
  const json inputs =
      json::array({{{"name", "u"}, {"datatype", "UINT8"}, {"shape", {2}}, {"data", {1, 2}}}});
  std::string blob;
  auto r = pack_kserve_inputs(inputs, blob);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(values_at<std::uint8_t>(blob, r->at(0)), (std::vector<std::uint8_t>{1, 2}));
}

TEST(TensorCodec, EveryDataTypeHasANameThatParsesBackAndASize) {
  std::size_t index = 0;
  for (const auto type : kAllDataTypes) {
    EXPECT_EQ(static_cast<std::size_t>(type), index++);
    const auto name = to_string(type);
    EXPECT_FALSE(name.empty());
    EXPECT_EQ(parse_datatype(name), type) << name;
    if (type == DataType::BYTES) {
      EXPECT_EQ(element_size(type), 0u);  // variable
    } else {
      EXPECT_GE(element_size(type), 1u) << name;
    }
  }
}

// --- UINT16/32/64 ---------------------------------------------------------------------------

TEST(TensorCodec, PackWideUnsignedIntegers) {
  std::string blob;
  const auto u16 = pack_one(one_input("u", "UINT16", "[2]", "[0,65535]"), blob);
  EXPECT_EQ(values_at<std::uint16_t>(blob, u16), (std::vector<std::uint16_t>{0, 65535}));
  const auto u32 = pack_one(one_input("u", "UINT32", "[2]", "[7,4294967295]"), blob);
  EXPECT_EQ(values_at<std::uint32_t>(blob, u32), (std::vector<std::uint32_t>{7, 4294967295u}));
  const auto u64 = pack_one(one_input("u", "UINT64", "[2]", "[1,18446744073709551615]"), blob);
  EXPECT_EQ(values_at<std::uint64_t>(blob, u64),
            (std::vector<std::uint64_t>{1, std::numeric_limits<std::uint64_t>::max()}));
  for (const auto& [type, data] : {std::pair{"UINT16", "[65536]"}, std::pair{"UINT16", "[-1]"},
                                   std::pair{"UINT32", "[4294967296]"}, std::pair{"UINT64", "[-1]"},
                                   std::pair{"UINT64", "[18446744073709551616]"},  // a double
                                   std::pair{"UINT64", "[1.0]"}}) {
    const Error e = pack_error(one_input("t", type, "[1]", data));
    EXPECT_NE(e.message.find(type), std::string::npos) << type << " " << data << ": " << e.message;
  }
}

TEST(TensorCodec, Uint64MaxPrintsUnsigned) {
  std::string blob;
  const auto m = pack_one(
      one_input("u", "UINT64", "[3]", "[18446744073709551615,0,9223372036854775808]"), blob);
  EXPECT_EQ(tensor_to_kserve_json(m, blob)["data"].dump(),
            "[18446744073709551615,0,9223372036854775808]");
}

// --- FP16 and BF16 ----------------------------------------------------------------------------

TEST(TensorCodec, Fp16RoundsToNearestEven) {
  EXPECT_EQ(to_fp16_bits(1.0), 0x3C00);
  EXPECT_EQ(to_fp16_bits(-2.0), 0xC000);
  EXPECT_EQ(to_fp16_bits(0.1), 0x2E66);
  EXPECT_EQ(to_fp16_bits(65504.0), 0x7BFF);
  EXPECT_EQ(to_fp16_bits(2049.0), 0x6800);  // a tie between 2048 and 2050: the even 2048
  EXPECT_EQ(to_fp16_bits(2051.0), 0x6802);  // a tie between 2050 and 2052: the even 2052
  EXPECT_EQ(to_fp16_bits(2049.5), 0x6801);  // past the tie
  EXPECT_EQ(to_fp16_bits(1.0 + std::ldexp(1.0, -11)), 0x3C00);
  // Just above that tie: the right answer rounds up. Through float it would land on the tie
  // first and then round down to even (double rounding).
  EXPECT_EQ(to_fp16_bits(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)), 0x3C01);
  // Subnormals and the smallest normal.
  EXPECT_EQ(to_fp16_bits(std::ldexp(1.0, -14)), 0x0400);
  EXPECT_EQ(to_fp16_bits(std::ldexp(1.0, -24)), 0x0001);
  EXPECT_EQ(to_fp16_bits(std::ldexp(1.0, -25)), 0x0000);     // a tie with 0: even
  EXPECT_EQ(to_fp16_bits(std::ldexp(3.0, -25)), 0x0002);     // a tie: even
  EXPECT_EQ(to_fp16_bits(std::ldexp(1023.5, -24)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(to_fp16_bits(1e-300), 0x0000);
  EXPECT_EQ(to_fp16_bits(-1e-300), 0x8000);
  // Past the largest finite value.
  EXPECT_EQ(to_fp16_bits(65519.0), 0x7BFF);
  EXPECT_EQ(to_fp16_bits(65520.0), 0x7C00);  // the tie with 65536 rounds to infinity
  EXPECT_EQ(to_fp16_bits(1e300), 0x7C00);
  // Specials.
  EXPECT_EQ(to_fp16_bits(-0.0), 0x8000);
  EXPECT_EQ(to_fp16_bits(std::numeric_limits<double>::infinity()), 0x7C00);
  EXPECT_EQ(to_fp16_bits(-std::numeric_limits<float>::infinity()), 0xFC00);
  const auto nan = to_fp16_bits(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  EXPECT_TRUE(std::isnan(fp16_bits_to_float(nan)));
  EXPECT_TRUE(std::isinf(fp16_bits_to_float(0xFC00)));
  EXPECT_LT(fp16_bits_to_float(0xFC00), 0.0f);
  EXPECT_EQ(fp16_bits_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_bits_to_float(0x7BFF), 65504.0f);
  EXPECT_TRUE(std::signbit(fp16_bits_to_float(0x8000)));
}

TEST(TensorCodec, Bf16RoundsToNearestEven) {
  EXPECT_EQ(to_bf16_bits(1.0), 0x3F80);
  EXPECT_EQ(to_bf16_bits(1.0 + std::ldexp(1.0, -8)), 0x3F80);      // tie: even
  EXPECT_EQ(to_bf16_bits(1.0 + 3 * std::ldexp(1.0, -8)), 0x3F82);  // tie: even
  EXPECT_EQ(to_bf16_bits(1.0 / 3), 0x3EAB);
  EXPECT_EQ(to_bf16_bits(-256.0), 0xC380);
  EXPECT_EQ(to_bf16_bits(3.3895313892515355e38), 0x7F7F);
  EXPECT_EQ(to_bf16_bits(std::numeric_limits<float>::max()), 0x7F80);  // rounds past the max
  EXPECT_EQ(to_bf16_bits(std::ldexp(1.0, -133)), 0x0001);              // smallest subnormal
  EXPECT_EQ(to_bf16_bits(std::ldexp(1.0, -126)), 0x0080);              // smallest normal
  EXPECT_EQ(to_bf16_bits(-0.0), 0x8000);
  EXPECT_EQ(to_bf16_bits(std::numeric_limits<double>::infinity()), 0x7F80);
  EXPECT_EQ(to_bf16_bits(std::numeric_limits<double>::quiet_NaN()), 0x7FC0);
  EXPECT_EQ(bf16_bits_to_float(0x3F80), 1.0f);
  EXPECT_EQ(bf16_bits_to_float(0xC380), -256.0f);
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(0x7FC0)));
}

// Every one of the 65536 bit patterns widens exactly and rounds back to itself.
TEST(TensorCodec, Fp16AndBf16RoundTripEveryBitPattern) {
  for (std::uint32_t b = 0; b <= 0xFFFF; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const float h = fp16_bits_to_float(bits);
    if (std::isnan(h)) {
      EXPECT_TRUE(std::isnan(fp16_bits_to_float(to_fp16_bits(h)))) << b;
    } else {
      ASSERT_EQ(to_fp16_bits(h), bits) << b;
    }
    const float f = bf16_bits_to_float(bits);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_bits_to_float(to_bf16_bits(f)))) << b;
    } else {
      ASSERT_EQ(to_bf16_bits(f), bits) << b;
    }
  }
}

TEST(TensorCodec, Fp16JsonRoundsAndPrintsShortest) {
  std::string blob;
  const auto m =
      pack_one(one_input("h", "FP16", "[7]", "[0.1,2049,2051,-65504,1e-8,0.333333,6e-8]"), blob);
  EXPECT_EQ(m.nbytes, 14u);
  EXPECT_EQ(values_at<std::uint16_t>(blob, m),
            (std::vector<std::uint16_t>{0x2E66, 0x6800, 0x6802, 0xFBFF, 0x0000, 0x3555, 0x0001}));
  // The shortest decimal that is the same FP16 value: 0.1 rather than 0.0999755859375.
  EXPECT_EQ(tensor_to_kserve_json(m, blob)["data"].dump(),
            "[0.1,2048.0,2052.0,-65504.0,0.0,0.3333,6e-08]");
}

TEST(TensorCodec, Bf16JsonRoundsAndPrintsShortest) {
  std::string blob;
  const auto m = pack_one(one_input("b", "BF16", "[4]", "[0.333333,1.00390625,-3e38,100]"), blob);
  EXPECT_EQ(values_at<std::uint16_t>(blob, m),
            (std::vector<std::uint16_t>{0x3EAB, 0x3F80, 0xFF62, 0x42C8}));
  EXPECT_EQ(tensor_to_kserve_json(m, blob)["data"].dump(), "[0.334,1.0,-3e+38,100.0]");
}

TEST(TensorCodec, Fp16AndBf16OutOfRangeAndWrongKindAreRejected) {
  for (const auto& [type, data] :
       {std::pair{"FP16", "[65505]"}, std::pair{"FP16", "[-1e5]"}, std::pair{"FP16", "[\"1\"]"},
        std::pair{"FP16", "[null]"}, std::pair{"BF16", "[3.4e38]"}, std::pair{"BF16", "[-1e39]"},
        std::pair{"BF16", "[true]"}}) {
    const Error e = pack_error(one_input("t", type, "[1]", data));
    EXPECT_EQ(e.kind, ErrorKind::bad_input);
    EXPECT_NE(e.message.find(std::string("not a valid ") + type), std::string::npos)
        << data << ": " << e.message;
  }
  std::string blob;
  EXPECT_TRUE(pack_kserve_inputs(one_input("max", "FP16", "[1]", "[65504]"), blob).ok());
  EXPECT_TRUE(
      pack_kserve_inputs(one_input("max", "BF16", "[1]", "[3.3895313892515355e38]"), blob).ok());
}

TEST(TensorCodec, NonFiniteHalfFloatsRenderAsNull) {
  std::string blob;
  const std::uint16_t h[] = {0x7C00, 0xFC00, 0x7E00, 0x3C00};
  const auto m16 = append_tensor(blob, "h", DataType::FP16, {4},
                                 std::string_view(reinterpret_cast<const char*>(h), sizeof h));
  EXPECT_EQ(tensor_to_kserve_json(m16, blob)["data"].dump(), "[null,null,null,1.0]");
  const std::uint16_t b[] = {0x7F80, 0x7FC0, 0xBF80};
  const auto mb = append_tensor(blob, "b", DataType::BF16, {3},
                                std::string_view(reinterpret_cast<const char*>(b), sizeof b));
  EXPECT_EQ(tensor_to_kserve_json(mb, blob)["data"].dump(), "[null,null,-1.0]");
}

// --- BYTES ------------------------------------------------------------------------------------

std::string le32(std::uint32_t n) {
  return {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
          static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
}

TEST(TensorCodec, PackBytesWritesTritonsLayout) {
  std::string blob;
  // Nested data, an empty string, an embedded NUL (\u0000 in JSON) and multi-byte UTF-8.
  const auto m =
      pack_one(one_input("s", "BYTES", "[2,2]", R"([["","a\u0000b"],["h\u00e9",""]])"), blob);
  EXPECT_EQ(m.datatype, DataType::BYTES);
  const std::string want =
      le32(0) + le32(3) + std::string("a\0b", 3) + le32(3) + "h\xC3\xA9" + le32(0);
  EXPECT_EQ(m.nbytes, want.size());
  EXPECT_EQ(blob.substr(m.offset, m.nbytes), want);
  EXPECT_EQ(check_raw_tensor(DataType::BYTES, 4, want), std::nullopt);
  const json out = tensor_to_kserve_json(m, blob);
  EXPECT_EQ(out["shape"], json({2, 2}));
  EXPECT_EQ(out["data"], json({"", std::string("a\0b", 3), "h\xC3\xA9", ""}));
  EXPECT_EQ(out["data"].dump(), R"(["","a\u0000b","hé",""])");
}

TEST(TensorCodec, PackBytesNeedsStrings) {
  for (const char* data : {"[1]", "[null]", "[[\"a\"],{}]", "[true]"}) {
    const Error e = pack_error(one_input("s", "BYTES", "[1]", data));
    EXPECT_EQ(e.kind, ErrorKind::bad_input) << data;
  }
  const Error e = pack_error(one_input("s", "BYTES", "[2]", R"(["a",2])"));
  EXPECT_NE(e.message.find("element 1 is not a valid BYTES"), std::string::npos) << e.message;
  const Error count = pack_error(one_input("s", "BYTES", "[3]", R"(["a","b"])"));
  EXPECT_NE(count.message.find("3 elements but data has 2"), std::string::npos) << count.message;
  std::string blob;
  const auto empty = pack_one(one_input("s", "BYTES", "[0]", "[]"), blob);
  EXPECT_EQ(empty.nbytes, 0u);
}

TEST(TensorCodec, BytesOutputThatIsNotUtf8IsRepaired) {
  std::string raw;
  ASSERT_TRUE(append_bytes_element(raw, "ok"));
  ASSERT_TRUE(append_bytes_element(raw,
                                   "a\xFF"
                                   "b"));
  ASSERT_TRUE(append_bytes_element(raw, "\xE2\x9C"));  // a cut-off 3-byte sequence
  std::string blob;
  const auto m = append_tensor(blob, "s", DataType::BYTES, {3}, raw);
  const json out = tensor_to_kserve_json(m, blob);
  EXPECT_EQ(out["data"], json({"ok",
                               "a\xEF\xBF\xBD"
                               "b",
                               "\xEF\xBF\xBD"}));
  EXPECT_NO_THROW(out.dump());
}

TEST(TensorCodec, CheckRawTensorFixedSizes) {
  EXPECT_EQ(check_raw_tensor(DataType::FP32, 4, std::string(16, '\0')), std::nullopt);
  EXPECT_EQ(check_raw_tensor(DataType::FP16, 3, std::string(6, '\0')), std::nullopt);
  EXPECT_EQ(check_raw_tensor(DataType::UINT64, 0, ""), std::nullopt);
  const auto why = check_raw_tensor(DataType::FP32, 4, std::string(12, '\0'));
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "holds 12 bytes, the shape needs 16");
  EXPECT_TRUE(check_raw_tensor(DataType::BF16, 2, std::string(5, '\0')));
  // A count whose byte size overflows is refused, not wrapped.
  const auto huge = std::numeric_limits<std::size_t>::max() / 4 + 1;
  EXPECT_TRUE(check_raw_tensor(DataType::FP64, huge, ""));
  EXPECT_TRUE(check_raw_tensor(DataType::INT32, huge, std::string(0, '\0')));
}

TEST(TensorCodec, CheckRawTensorBytesLayouts) {
  const std::string two = le32(1) + "x" + le32(0);
  EXPECT_EQ(check_raw_tensor(DataType::BYTES, 2, two), std::nullopt);
  EXPECT_EQ(check_raw_tensor(DataType::BYTES, 0, ""), std::nullopt);
  EXPECT_EQ(check_raw_tensor(DataType::BYTES, 1, le32(0)), std::nullopt);
  EXPECT_EQ(check_raw_tensor(DataType::BYTES, 1, le32(3) + std::string("\0\0\0", 3)), std::nullopt);
  struct Case {
    const char* what;
    std::size_t count;
    std::string bytes;
    const char* message_part;
  };
  const Case cases[] = {
      {"empty, one expected", 1, "", "cut off"},
      {"truncated prefix", 1, std::string("\x01\x00\x00", 3), "cut off"},
      {"truncated second prefix", 2, le32(1) + "x" + std::string("\x00\x00", 2), "element 1"},
      {"length past the end", 1, le32(5) + "abc", "says 5 bytes, but only 3 follow"},
      {"huge length", 1, le32(0xFFFFFFFFu) + "abc", "says 4294967295 bytes"},
      {"trailing bytes", 1, le32(1) + "x" + "yz", "2 byte(s) follow"},
      {"trailing empty element", 1, le32(0) + le32(0), "4 byte(s) follow"},
      {"fewer elements than the count", 3, two, "element 2"},
      {"more elements than the count", 1, two, "follow"},
      {"bytes for a count of zero", 0, le32(0), "follow"},
      {"a huge count", std::numeric_limits<std::size_t>::max(), two, "element 2"},
  };
  for (const auto& c : cases) {
    const auto why = check_raw_tensor(DataType::BYTES, c.count, c.bytes);
    ASSERT_TRUE(why) << c.what;
    EXPECT_NE(why->find(c.message_part), std::string::npos) << c.what << ": " << *why;
  }
}

TEST(TensorCodec, BytesElementsSplitsOnlyAWholeLayout) {
  const std::string raw = le32(2) + "hi" + le32(0) + le32(1) + std::string(1, '\0');
  const auto e = bytes_elements(raw);  // views into raw
  ASSERT_TRUE(e);
  EXPECT_EQ(*e, (std::vector<std::string_view>{"hi", "", std::string_view("\0", 1)}));
  EXPECT_EQ(bytes_elements(""), std::vector<std::string_view>{});
  EXPECT_FALSE(bytes_elements(le32(2) + "h"));
  EXPECT_FALSE(bytes_elements(le32(0) + "x"));
  EXPECT_FALSE(bytes_elements("abc"));
}

TEST(TensorCodec, ParseTensorListChecksBytesLayouts) {
  const std::string raw = le32(2) + "hi" + le32(0);
  std::string blob = "pad";
  const auto meta = append_tensor(blob, "s", DataType::BYTES, {2}, raw);
  EXPECT_EQ(meta.offset, 64u);
  json entry = to_json(meta);
  auto ok = parse_tensor_list(json::array({entry}), blob);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->at(0).nbytes, raw.size());
  EXPECT_EQ(tensor_to_kserve_json(ok->at(0), blob)["data"], json({"hi", ""}));

  entry["shape"] = json::array({3});  // one element more than the layout holds
  auto fewer = parse_tensor_list(json::array({entry}), blob);
  ASSERT_FALSE(fewer.ok());
  EXPECT_NE(fewer.error().message.find("'s'"), std::string::npos) << fewer.error().message;
  entry["shape"] = json::array({1});  // the second element is then trailing
  EXPECT_FALSE(parse_tensor_list(json::array({entry}), blob).ok());
  entry["shape"] = json::array({2});
  entry["nbytes"] = raw.size() - 1;  // cuts the last prefix
  EXPECT_FALSE(parse_tensor_list(json::array({entry}), blob).ok());
  entry["nbytes"] = raw.size() + 1;  // past the blob
  EXPECT_FALSE(parse_tensor_list(json::array({entry}), blob).ok());
}

TEST(TensorCodec, AppendBytesElement) {
  std::string raw;
  EXPECT_TRUE(append_bytes_element(raw, ""));
  EXPECT_TRUE(append_bytes_element(raw, "abc"));
  EXPECT_EQ(raw, le32(0) + le32(3) + "abc");
}

}  // namespace
}  // namespace respawn
