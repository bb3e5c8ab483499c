// parse_infer_body (supervisor/http/infer_json.hpp) reads the numbers of KServe `data` arrays
// without nlohmann: whatever the body, packing what it returns must give exactly what packing
// nlohmann's parse gives (the same bytes and tensors, or the same error), and the fast read
// must really be taken for the bodies clients send.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "http/http_types.hpp"
#include "http/infer_json.hpp"
#include "respawn/tensor_codec.hpp"

namespace respawn {
namespace {

using nlohmann::json;

// What a body packs to: the error, or the tensor list and the blob.
std::string packed(const Result<json>& body) {
  if (!body) return "parse error: " + body.error().message;
  const auto it = body->find("inputs");
  if (it == body->end()) return "no inputs";
  std::string blob;
  const auto metas = pack_kserve_inputs(*it, blob);
  if (!metas) return "pack error: " + metas.error().message;
  json list = json::array();
  for (const auto& m : *metas) list.push_back(to_json(m));
  return list.dump() + "\n" + blob;
}

// The two ways agree on `text`; returns whether the fast one read at least one array.
bool agree(const std::string& text) {
  const auto fast = parse_infer_body(text);
  const auto slow = parse_json_object(text);
  EXPECT_EQ(packed(fast), packed(slow)) << text;
  if (!fast) return false;
  const auto& inputs = (*fast)["inputs"];
  if (!inputs.is_array()) return false;
  for (const auto& in : inputs) {
    if (in.is_object() && in.contains("data") && in["data"].is_binary()) return true;
  }
  return false;
}

std::string input(const std::string& type, const std::string& shape, const std::string& data) {
  return R"({"name":"x","datatype":")" + type + R"(","shape":)" + shape + R"(,"data":)" + data +
         "}";
}

std::string body(const std::string& inputs) {
  return R"({"id":"r","inputs":[)" + inputs + "]}";
}

TEST(InferJson, AnImageIsReadFastAndPacksAsNlohmannWould) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> pixel(-3.0f, 3.0f);
  std::string data = "[";
  for (int c = 0; c < 3; ++c) {
    data += c ? ",[" : "[";
    for (int i = 0; i < 500; ++i) data += (i ? "," : "") + json(pixel(rng)).dump();
    data += "]";
  }
  data += "]";
  EXPECT_TRUE(agree(body(input("FP32", "[1,3,500]", data))));
  EXPECT_TRUE(agree(body(input("FP16", "[1,3,500]", data))));
  EXPECT_TRUE(agree(body(input("BF16", "[1,3,500]", data))));
  EXPECT_TRUE(agree(body(input("FP64", "[1,3,500]", data))));
}

TEST(InferJson, EveryKindOfNumberPacksAsNlohmannReadsIt) {
  // Each token alone, in every datatype: the same bytes, or the same "not a valid" error.
  const std::vector<std::string> tokens = {"0",
                                           "-0",
                                           "1",
                                           "-1",
                                           "127",
                                           "128",
                                           "-128",
                                           "-129",
                                           "255",
                                           "256",
                                           "65535",
                                           "65536",
                                           "-32769",
                                           "4294967295",
                                           "4294967296",
                                           "2147483648",
                                           "9223372036854775807",
                                           "9223372036854775808",
                                           "-9223372036854775808",
                                           "-9223372036854775809",
                                           "18446744073709551615",
                                           "18446744073709551616",
                                           "1.5",
                                           "-0.0",
                                           "1e2",
                                           "1E2",
                                           "1e+2",
                                           "1e-2",
                                           "0.1",
                                           "3.4028235e38",
                                           "3.4028236e38",
                                           "1e39",
                                           "1e308",
                                           "1e309",
                                           "-1e309",
                                           "1e-400",
                                           "5e-324",
                                           "65504",
                                           "65520",
                                           "2.5e-8",
                                           "123456789012345678901234567890",
                                           "0e0",
                                           "-0e-0",
                                           "1.7976931348623157e308",
                                           "3.3895313892515355e38",
                                           "3.40e38"};
  const std::vector<std::string> types = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64",
                                          "INT8", "INT16", "INT32",  "INT64",  "FP16",
                                          "FP32", "FP64",  "BF16",   "BYTES"};
  for (const auto& type : types) {
    for (const auto& token : tokens) agree(body(input(type, "[1]", "[" + token + "]")));
    // All of them at once: the index of the first bad element must agree too.
    std::string all = "[";
    for (const auto& token : tokens) all += (all.size() > 1 ? "," : "") + token;
    all += "]";
    agree(body(input(type, "[" + std::to_string(tokens.size()) + "]", all)));
  }
  EXPECT_TRUE(agree(body(input("INT64", "[2]", "[-0, 9223372036854775807]"))));
}

TEST(InferJson, WhatItCannotReadIsLeftToNlohmann) {
  // Not numbers, or not JSON, or keys that could hide `inputs` or `data`: the same answers.
  const std::vector<std::string> bodies = {
      body(input("BOOL", "[2]", "[true,false]")),
      body(input("BYTES", "[2]", R"(["a","b"])")),
      body(input("FP32", "[2]", "[1,,2]")),
      body(input("FP32", "[2]", "[1,2,]")),
      body(input("FP32", "[2]", "[01,2]")),
      body(input("FP32", "[2]", "[1.,2]")),
      body(input("FP32", "[2]", "[.5,2]")),
      body(input("FP32", "[2]", "[+1,2]")),
      body(input("FP32", "[2]", "[1e,2]")),
      body(input("FP32", "[2]", "[NaN,2]")),
      body(input("FP32", "[2]", "[-,2]")),
      body(input("FP32", "[2]", "[1 2]")),
      body(input("FP32", "[2]", "[[1],[2]")),
      body(input("FP32", "[2]", "[1,2]]")),
      body(input("FP32", "[2]", "[1,\"2\"]")),
      body(input("FP32", "[2]", "[1,null]")),
      body(input("FP32", "[1]", "1")),
      body(input("FP32", "[0]", "[]")),
      body(input("FP32", "[0]", "[[],[[]]]")),
      body(input("FP32", "[2]", " [ 1 ,\n\t[ 2 ] ] ")),
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"data":[2]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"d\u0061ta":[2]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"inp\u0075ts":[]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"inputs":[]})",
      R"({"inputs":[{"name":"x\"],\"data\":[9]}","datatype":"FP32","shape":[1],"data":[1]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]} )",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]} x)",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}{})",
      R"({"inputs":[1,{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
      R"({"inputs":{"data":[1]}})",
      R"({"parameters":{"inputs":[{"data":[1]}]},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
      R"([{"inputs":[{"data":[1]}]}])",
      std::string(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})") + '\0',
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":)" + std::string(70, '[') +
          "1" + std::string(70, ']') + "}]}",
      "",
      "{",
  };
  for (const auto& b : bodies) agree(b);
  // At the depth limit (64 levels, 61 of them the array's) and one past it.
  const auto nested = [](int levels) {
    return body(input("FP32", "[1]", std::string(levels, '[') + "1" + std::string(levels, ']')));
  };
  EXPECT_TRUE(agree(nested(61)));
  EXPECT_FALSE(agree(nested(62)));
  EXPECT_FALSE(parse_infer_body(nested(62)).ok());
  // Two inputs, one read fast and one not: each packs as it should.
  EXPECT_TRUE(agree(body(input("FP32", "[2]", "[1,2]") + "," + input("BOOL", "[1]", "[true]"))));
}

TEST(InferJson, RandomBodiesPackAsNlohmannWould) {
  std::mt19937 rng(1234);
  const std::vector<std::string> pieces = {
      "0",    "-0",    "1",    "-7",         "3.25", "1e3",   "-2.5e-3", "255",
      "-129", "70000", "1e39", "4294967296", "true", "\"s\"", "null",    "[",
      "]",    ",",     " ",    "01",         "1.",   "-",     "1e400"};
  const std::vector<std::string> types = {"BOOL", "UINT8", "INT16", "UINT32", "INT64",
                                          "FP16", "FP32",  "FP64",  "BF16",   "BYTES"};
  int fast = 0;
  for (int n = 0; n < 3000; ++n) {
    std::string data = "[";
    const int len = std::uniform_int_distribution<int>(0, 8)(rng);
    const bool well_formed = rng() % 2 == 0;
    int count = 0;
    for (int i = 0; i < len; ++i) {
      if (well_formed) {
        const std::string& p = pieces[rng() % 12];  // numbers only
        data += (i ? "," : "") + (rng() % 4 == 0 ? "[" + p + "]" : p);
        ++count;
      } else {
        data += pieces[rng() % pieces.size()];
      }
    }
    data += "]";
    const int shape = rng() % 5 == 0 ? count + 1 : count;
    fast +=
        agree(body(input(types[rng() % types.size()], "[" + std::to_string(shape) + "]", data)));
  }
  EXPECT_GT(fast, 1000);  // the fast read is the one taken for arrays of numbers
}

}  // namespace
}  // namespace respawn
