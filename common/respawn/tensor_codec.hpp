#pragma once
// Converts KServe v2 JSON tensors to the IPC's raw layout and back. The supervisor uses it so
// that tensor bytes cross the socket raw (never base64, never JSON numbers) and the worker
// only ever sees typed buffers. Pure functions, thread-safe.
//
// IPC layout: a JSON list of {name, datatype, shape, offset, nbytes} plus one binary blob in
// which each tensor starts at a 64-byte aligned offset, in row-major order.
//
// Datatypes (docs/ipc.md#datatypes):
// - Fixed-size types are stored as the host's (little-endian) values. FP16 is IEEE binary16,
//   BF16 is bfloat16 (the top half of a binary32), both converted here without torch.
// - JSON -> FP16/BF16/FP32 rounds to nearest, ties to even, straight from the JSON number (a
//   double; no double rounding through float). A value beyond the type's largest finite one
//   (65504 for FP16, about 3.39e38 for BF16, 3.40e38 for FP32) is an error, never infinity.
// - Raw -> JSON: floats print as the shortest decimal that reads back as the same value of
//   *their* type (FP16 0.1 prints as 0.1, not 0.0999755859375), except that an FP16 or BF16
//   whole number below 2^24 prints exactly (65504, not 65500); inf and NaN print as null.
//   UINT64 prints unsigned (18446744073709551615).
// - BYTES is Triton's binary layout: each element a 4-byte little-endian length, then that many
//   bytes; no padding, no terminator. Its JSON form is a (flat or nested) array of strings.
//   element_size(BYTES) is 0 (variable) and nbytes is whatever the layout takes. In JSON
//   output an element that is not valid UTF-8 is repaired with sanitize_utf8 (each invalid
//   sequence becomes U+FFFD): JSON cannot carry raw bytes, and the output must stay valid JSON.
//   Exact bytes need Triton's binary tensor extension (the supervisor's HTTP side).
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"

namespace respawn {

// In Triton's order. Only names cross a process boundary, never these values.
enum class DataType {
  BOOL,
  UINT8,
  UINT16,
  UINT32,
  UINT64,
  INT8,
  INT16,
  INT32,
  INT64,
  FP16,
  FP32,
  FP64,
  BF16,
  BYTES
};
// Every DataType, in enum order: the one list that the codec's table (tensor_codec.cpp) and the
// worker's libtorch mapping (worker/torch_types.hpp) are checked against.
inline constexpr std::array<DataType, 14> kAllDataTypes = {
    DataType::BOOL, DataType::UINT8, DataType::UINT16, DataType::UINT32, DataType::UINT64,
    DataType::INT8, DataType::INT16, DataType::INT32,  DataType::INT64,  DataType::FP16,
    DataType::FP32, DataType::FP64,  DataType::BF16,   DataType::BYTES};

std::optional<DataType> parse_datatype(std::string_view name);
std::string_view to_string(DataType type);
// Bytes per element; 0 for BYTES, whose elements have variable size.
std::size_t element_size(DataType type);

// IEEE binary16 and bfloat16, as their bit patterns. to_*_bits rounds `value` (a float or a
// double: both convert exactly) to nearest, ties to even; beyond the largest finite value it
// rounds to infinity, NaN stays NaN (quiet) and the sign of zero is kept. The reverse is exact.
std::uint16_t to_fp16_bits(double value);
std::uint16_t to_bf16_bits(double value);
float fp16_bits_to_float(std::uint16_t bits);
float bf16_bits_to_float(std::uint16_t bits);

struct TensorMeta {
  std::string name;
  DataType datatype = DataType::FP32;
  std::vector<std::int64_t> shape;
  std::size_t offset = 0;
  std::size_t nbytes = 0;
};

// Product of dims; nullopt for a negative dim or overflow past max_elements.
std::optional<std::size_t> element_count(const std::vector<std::int64_t>& shape,
                                         std::size_t max_elements = std::size_t{1} << 40);

// nullopt when `bytes` is exactly `count` elements of `type`: for a fixed-size type
// count * element_size bytes; for BYTES, walking the length prefixes from the start finds
// exactly `count` elements and nothing after them. Otherwise a short message saying what is
// wrong ("holds 12 bytes, the shape needs 16"). Safe for any input (hostile sizes included).
std::optional<std::string> check_raw_tensor(DataType type, std::size_t count,
                                            std::string_view bytes);

// The elements of a BYTES tensor's raw bytes, as views into `raw`, in order; nullopt when the
// layout is malformed (check_raw_tensor says why).
std::optional<std::vector<std::string_view>> bytes_elements(std::string_view raw);
// Appends one element in the BYTES layout; false (and nothing appended) when it is too long
// for the 4-byte length prefix.
bool append_bytes_element(std::string& raw, std::string_view element);

nlohmann::json to_json(const TensorMeta& meta);
Result<TensorMeta> tensor_meta_from_json(const nlohmann::json& j);

// A JSON number as nlohmann keeps it: a non-negative integer as unsigned, a negative one as
// signed, one with a fraction or an exponent as a double. A `data` array of numbers read
// without nlohmann (parse_infer_body, supervisor/http/infer_json.hpp) is a binary JSON value
// of these (subtype kJsonNumbersSubtype; JSON text can never make a binary value), and packs
// exactly as the same array parsed by nlohmann would.
struct JsonNumber {
  enum class Kind : std::uint8_t { unsigned_integer, signed_integer, floating };
  Kind kind = Kind::unsigned_integer;
  union {
    std::uint64_t u = 0;
    std::int64_t i;
    double d;
  };
};
inline constexpr std::uint8_t kJsonNumbersSubtype = 0x6e;

// Packs KServe v2 `inputs` (each with name, shape, datatype and flat or nested data) into
// `blob`, returning the IPC metadata. Errors are bad_input and name the offending tensor.
Result<std::vector<TensorMeta>> pack_kserve_inputs(const nlohmann::json& inputs, std::string& blob);

// Where each tensor of a blob starts: a multiple of this many bytes from the blob's start.
inline constexpr std::size_t kTensorAlign = 64;
// Where the next tensor of a blob of `size` bytes starts.
inline std::size_t next_tensor_offset(std::size_t size) {
  return (size + kTensorAlign - 1) / kTensorAlign * kTensorAlign;
}

// Appends one raw tensor to `blob` at the next aligned offset and returns its metadata.
TensorMeta append_tensor(std::string& blob, std::string name, DataType type,
                         std::vector<std::int64_t> shape, std::string_view bytes);

// Checks that a tensor list from the other process fits the blob (offsets, sizes, dtypes; each
// tensor's bytes with check_raw_tensor).
Result<std::vector<TensorMeta>> parse_tensor_list(const nlohmann::json& list,
                                                  std::string_view blob);

// One tensor as a KServe v2 JSON output: {name, datatype, shape, data (flat)}. `meta` must
// lie inside `blob` (parse_tensor_list checked it); a malformed BYTES layout yields the
// elements before the fault.
nlohmann::json tensor_to_kserve_json(const TensorMeta& meta, std::string_view blob);

}  // namespace respawn
