#pragma once
// The KServe datatypes respawn supports and libtorch's scalar types, both ways, and the values a
// forward returned. Pure functions; thread-safe. Included only by code that links libtorch
// (the worker and its bench binary).
//
// BYTES is not a tensor: a BYTES input reaches forward as a List[str] (its elements in
// row-major order; the shape is not passed), and a List[str] that forward returns, alone or as
// an element of its tuple, becomes a BYTES output of shape [n]. The bytes are passed as they
// are: a string need not be valid UTF-8.
#include <ATen/core/ivalue.h>
#include <torch/types.h>
#include <torch/version.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "respawn/tensor_codec.hpp"

// torch.uint16/32/64 came with libtorch 2.3.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define RESPAWN_HAS_UNSIGNED_TENSORS 1
#else
#define RESPAWN_HAS_UNSIGNED_TENSORS 0
#endif

namespace respawn::worker {

// libtorch's scalar type for a datatype; nullopt for BYTES (a list of strings, not a tensor)
// and, before libtorch 2.3, for UINT16/32/64.
inline std::optional<torch::ScalarType> to_scalar_type(DataType type) {
  switch (type) {
    case DataType::BOOL:
      return torch::kBool;
    case DataType::UINT8:
      return torch::kUInt8;
    case DataType::UINT16:
    case DataType::UINT32:
    case DataType::UINT64:
#if RESPAWN_HAS_UNSIGNED_TENSORS
      return type == DataType::UINT16   ? torch::kUInt16
             : type == DataType::UINT32 ? torch::kUInt32
                                        : torch::kUInt64;
#else
      return std::nullopt;
#endif
    case DataType::INT8:
      return torch::kInt8;
    case DataType::INT16:
      return torch::kInt16;
    case DataType::INT32:
      return torch::kInt32;
    case DataType::INT64:
      return torch::kInt64;
    case DataType::FP16:
      return torch::kHalf;
    case DataType::FP32:
      return torch::kFloat32;
    case DataType::FP64:
      return torch::kFloat64;
    case DataType::BF16:
      return torch::kBFloat16;
    case DataType::BYTES:
      return std::nullopt;
  }
  return std::nullopt;
}

// to_scalar_type's switch has no default: -Wswitch names a DataType it misses.
inline std::optional<DataType> from_scalar_type(torch::ScalarType type) {
  for (auto t : kAllDataTypes) {
    if (to_scalar_type(t) == type) return t;
  }
  return std::nullopt;
}

// One output of a forward: a tensor, or a list of strings (BYTES).
struct ForwardOutput {
  torch::Tensor tensor;  // undefined for a list of strings
  std::vector<std::string> strings;

  bool is_bytes() const { return !tensor.defined(); }
  // The length of the first dimension (a list's length); nullopt for a 0-dim tensor.
  std::optional<std::int64_t> rows() const {
    if (is_bytes()) return static_cast<std::int64_t>(strings.size());
    if (tensor.dim() == 0) return std::nullopt;
    return tensor.size(0);
  }
  // Rows [start, start + length); rows() must cover them.
  ForwardOutput narrow(std::int64_t start, std::int64_t length) const {
    if (!is_bytes()) return {tensor.narrow(0, start, length), {}};
    return {{}, {strings.begin() + start, strings.begin() + start + length}};
  }
};

inline bool is_string_list(const c10::IValue& v) {
  return v.isList() && v.toList().elementType()->kind() == c10::TypeKind::StringType;
}

inline ForwardOutput strings_output(const c10::IValue& v) {
  ForwardOutput out;
  for (const auto& s : v.toListRef()) out.strings.push_back(s.toStringRef());
  return out;
}

// The outputs of a forward's result: a tensor, a List[str], a list of tensors, or a tuple of
// tensors and List[str]s (up to its first element that is neither). Empty when there is none.
inline std::vector<ForwardOutput> forward_outputs(const c10::IValue& result) {
  std::vector<ForwardOutput> outputs;
  if (result.isTensor()) {
    outputs.push_back({result.toTensor(), {}});
  } else if (result.isTuple()) {
    for (const auto& v : result.toTupleRef().elements()) {
      if (v.isTensor()) {
        outputs.push_back({v.toTensor(), {}});
      } else if (is_string_list(v)) {
        outputs.push_back(strings_output(v));
      } else {
        break;
      }
    }
  } else if (result.isTensorList()) {
    for (const auto& t : result.toTensorVector()) outputs.push_back({t, {}});
  } else if (is_string_list(result)) {
    outputs.push_back(strings_output(result));
  }
  return outputs;
}

}  // namespace respawn::worker
