#pragma once
// Converts KServe v2 JSON tensors to the IPC's raw layout and back. The supervisor uses it so
// that tensor bytes cross the socket raw (never base64, never JSON numbers) and the worker
// only ever sees typed buffers. Pure functions, thread-safe.
//
// IPC layout: a JSON list of {name, datatype, shape, offset, nbytes} plus one binary blob in
// which each tensor starts at a 64-byte aligned offset, in row-major order.
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

enum class DataType { BOOL, UINT8, INT8, INT16, INT32, INT64, FP32, FP64 };
// Every DataType, in enum order: the one list that the codec's table (tensor_codec.cpp) and the
// worker's libtorch mapping (worker/torch_types.hpp) are checked against.
inline constexpr std::array<DataType, 8> kAllDataTypes = {
    DataType::BOOL,  DataType::UINT8, DataType::INT8, DataType::INT16,
    DataType::INT32, DataType::INT64, DataType::FP32, DataType::FP64};

std::optional<DataType> parse_datatype(std::string_view name);
std::string_view to_string(DataType type);
std::size_t element_size(DataType type);

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

nlohmann::json to_json(const TensorMeta& meta);
Result<TensorMeta> tensor_meta_from_json(const nlohmann::json& j);

// Packs KServe v2 `inputs` (each with name, shape, datatype and flat or nested data) into
// `blob`, returning the IPC metadata. Errors are bad_input and name the offending tensor.
Result<std::vector<TensorMeta>> pack_kserve_inputs(const nlohmann::json& inputs, std::string& blob);

// Appends one raw tensor to `blob` at the next aligned offset and returns its metadata.
TensorMeta append_tensor(std::string& blob, std::string name, DataType type,
                         std::vector<std::int64_t> shape, std::string_view bytes);

// Checks that a tensor list from the other process fits the blob (offsets, sizes, dtypes).
Result<std::vector<TensorMeta>> parse_tensor_list(const nlohmann::json& list,
                                                  std::string_view blob);

// One tensor as a KServe v2 JSON output: {name, datatype, shape, data (flat)}.
nlohmann::json tensor_to_kserve_json(const TensorMeta& meta, std::string_view blob);

}  // namespace respawn
