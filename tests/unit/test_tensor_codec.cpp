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
      {"BOOL", 1},  {"UINT8", 1}, {"INT8", 1}, {"INT16", 2},
      {"INT32", 4}, {"INT64", 8}, {"FP32", 4}, {"FP64", 8},
  };
  for (const auto& [name, size] : types) {
    auto t = parse_datatype(name);
    ASSERT_TRUE(t.has_value()) << name;
    EXPECT_EQ(to_string(*t), name);
    EXPECT_EQ(element_size(*t), size) << name;
  }
  EXPECT_FALSE(parse_datatype("FP16").has_value());
  EXPECT_FALSE(parse_datatype("fp32").has_value());
  EXPECT_FALSE(parse_datatype("BYTES").has_value());
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
  for (const char* dt : {"FP16", "BYTES", "int32"}) {
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
  bad_type["datatype"] = "FP16";
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
    {"name":"f64","datatype":"FP64","shape":[2],"data":[0.1,1e-300]}
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
    EXPECT_GE(element_size(type), 1u) << name;
  }
}

}  // namespace
}  // namespace respawn
