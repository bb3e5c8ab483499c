// Fuzzes the tensor codec (common/tensor_codec.cpp) from both sides of the socket. The input is
// JSON text, optionally followed by a NUL byte and a raw blob:
// - as a KServe `inputs` array from a client (pack_kserve_inputs): whatever it accepts must be
//   a tensor list that the other side accepts for the packed blob, and must read back with the
//   element counts and the integer values the client sent;
// - as an IPC tensor list from a worker over the given blob (parse_tensor_list): whatever it
//   accepts must be readable (tensor_to_kserve_json) without touching bytes outside the blob,
//   and a numeric one classifiable (Triton's classification extension) into a BYTES tensor that
//   fits its shape;
// - as a whole infer body read by parse_infer_body (its `data` numbers without nlohmann): it
//   must pack exactly as nlohmann's parse of the same text does, or fail with the same error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "http/http_types.hpp"
#include "http/infer_json.hpp"
#include "http/triton.hpp"
#include "respawn/json_util.hpp"
#include "respawn/tensor_codec.hpp"

using namespace respawn;
using nlohmann::json;

namespace {

void flatten(const json& data, std::vector<json>& out) {
  if (data.is_array()) {
    for (const auto& item : data) flatten(item, out);
  } else {
    out.push_back(data);
  }
}

// Whether a value the client sent reads back unchanged: integers, bools and strings (JSON text
// is valid UTF-8, so BYTES needs no repair on the way back); floats are rounded to their type.
bool reads_back_exactly(DataType type) {
  switch (type) {
    case DataType::BOOL:
    case DataType::UINT8:
    case DataType::UINT16:
    case DataType::UINT32:
    case DataType::UINT64:
    case DataType::INT8:
    case DataType::INT16:
    case DataType::INT32:
    case DataType::INT64:
    case DataType::BYTES:
      return true;
    case DataType::FP16:
    case DataType::FP32:
    case DataType::FP64:
    case DataType::BF16:
      return false;
  }
  return false;
}

void check_client_side(const json& inputs) {
  std::string blob;
  const auto packed = pack_kserve_inputs(inputs, blob);
  if (!packed) {
    FUZZ_CHECK(packed.error().kind == ErrorKind::bad_input, "a refusal that is not bad_input");
    return;
  }
  json list = json::array();
  for (const auto& meta : *packed) list.push_back(to_json(meta));
  // What the worker receives: the list must survive a JSON round trip and fit the blob.
  const auto parsed = parse_tensor_list(parse_json(list.dump()), blob);
  FUZZ_CHECK(parsed.ok(), "the packed tensor list does not fit its own blob");
  FUZZ_CHECK(parsed->size() == packed->size(), "tensor count changed");
  for (std::size_t i = 0; i < parsed->size(); ++i) {
    const TensorMeta& meta = (*parsed)[i];
    FUZZ_CHECK(meta.offset % 64 == 0, "tensor not 64-byte aligned");
    const json out = tensor_to_kserve_json(meta, blob);
    std::vector<json> sent;
    flatten(inputs[i]["data"], sent);
    FUZZ_CHECK(out["data"].size() == sent.size(), "element count changed");
    FUZZ_CHECK(out["shape"] == inputs[i]["shape"], "shape changed");
    if (reads_back_exactly(meta.datatype)) {
      for (std::size_t k = 0; k < sent.size(); ++k) {
        FUZZ_CHECK(out["data"][k] == sent[k], "an integer, bool or string element changed");
      }
    }
    out.dump();  // what a response does with it; must not throw
  }
}

// What an infer body packs to: the error, or the tensor list and the blob.
std::string packed_body(const Result<json>& body) {
  if (!body) return "parse error: " + body.error().message;
  std::string blob;
  const auto metas = pack_kserve_inputs(json_field(*body, "inputs"), blob);
  if (!metas) return "pack error: " + metas.error().message;
  json list = json::array();
  for (const auto& meta : *metas) list.push_back(to_json(meta));
  return list.dump() + '\n' + blob;
}

void check_worker_side(const json& list, std::string_view blob) {
  const auto parsed = parse_tensor_list(list, blob);
  if (!parsed) return;
  for (const auto& meta : *parsed) {
    FUZZ_CHECK(meta.offset <= blob.size() && meta.nbytes <= blob.size() - meta.offset,
               "accepted a tensor outside the blob");
    // Copied so that ASan sees any read past the tensor's own bytes.
    const std::string own(blob.substr(meta.offset, meta.nbytes));
    TensorMeta local = meta;
    local.offset = 0;
    const json out = tensor_to_kserve_json(local, own);
    FUZZ_CHECK(out["data"].size() == element_count(meta.shape),
               "element count does not match the shape");
    out.dump();
    // Triton's classification of the same output (a few classes, one label).
    const auto k = static_cast<std::uint32_t>(meta.nbytes % 5);
    const auto classes = triton::classify(local, own, k, {"label"});
    if (meta.datatype == DataType::BOOL || meta.datatype == DataType::BYTES) {
      FUZZ_CHECK(!classes && classes.error().kind == ErrorKind::bad_input,
                 "classified a BOOL or BYTES output");
      continue;
    }
    if (!classes) {
      FUZZ_CHECK(classes.error().message.find("classes an answer may hold") != std::string::npos,
                 "a numeric output that fits its blob could not be classified");
      continue;
    }
    const auto strings = bytes_elements(classes->bytes);
    FUZZ_CHECK(strings.has_value(), "classes are not a BYTES layout");
    FUZZ_CHECK(element_count(classes->shape) == strings->size(), "classes do not fit their shape");
    for (const auto& text : *strings) {
      FUZZ_CHECK(text.find(':') != std::string_view::npos, "a class without value:index");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  FUZZ_CHECK(packed_body(parse_infer_body(input)) == packed_body(parse_json_object(input)),
             "parse_infer_body packs otherwise than nlohmann's parse");
  const auto nul = input.find('\0');
  const json j = parse_json(input.substr(0, nul));
  if (j.is_discarded()) return 0;
  const std::string blob(nul == std::string_view::npos ? std::string_view{}
                                                       : input.substr(nul + 1));
  check_client_side(j);
  check_client_side(json_field(j, "inputs"));  // a whole infer body works too
  check_worker_side(j, blob);
  check_worker_side(json_field(j, "outputs"), blob);
  for (const auto type : kAllDataTypes) {
    FUZZ_CHECK(parse_datatype(to_string(type)) == type, "datatype names do not round-trip");
  }
  return 0;
}
