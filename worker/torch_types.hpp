#pragma once
// The KServe datatypes respawn supports and libtorch's scalar types, both ways, and the tensors
// a forward returned. Pure functions; thread-safe. Included only by code that links libtorch
// (the worker and its bench binary).
#include <ATen/core/ivalue.h>
#include <torch/types.h>

#include <optional>
#include <vector>

#include "respawn/tensor_codec.hpp"

namespace respawn::worker {

inline torch::ScalarType to_scalar_type(DataType type) {
  switch (type) {
    case DataType::BOOL:
      return torch::kBool;
    case DataType::UINT8:
      return torch::kUInt8;
    case DataType::INT8:
      return torch::kInt8;
    case DataType::INT16:
      return torch::kInt16;
    case DataType::INT32:
      return torch::kInt32;
    case DataType::INT64:
      return torch::kInt64;
    case DataType::FP32:
      return torch::kFloat32;
    case DataType::FP64:
      return torch::kFloat64;
  }
  return torch::kFloat32;
}

// to_scalar_type's switch has no default: -Wswitch names a DataType it misses.
inline std::optional<DataType> from_scalar_type(torch::ScalarType type) {
  for (auto t : kAllDataTypes) {
    if (to_scalar_type(t) == type) return t;
  }
  return std::nullopt;
}

// The tensors of a forward's result: a tensor, or a tuple or list of them (a tuple up to its
// first element that is not a tensor). Empty when there is none.
inline std::vector<torch::Tensor> output_tensors(const c10::IValue& result) {
  std::vector<torch::Tensor> tensors;
  if (result.isTensor()) {
    tensors.push_back(result.toTensor());
  } else if (result.isTuple()) {
    for (const auto& v : result.toTupleRef().elements()) {
      if (!v.isTensor()) break;
      tensors.push_back(v.toTensor());
    }
  } else if (result.isTensorList()) {
    for (const auto& t : result.toTensorVector()) tensors.push_back(t);
  }
  return tensors;
}

}  // namespace respawn::worker
