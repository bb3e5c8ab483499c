#pragma once
// The worker's tensors in and out of forward: a batch of requests' inputs (TensorMetas over each
// request's IPC blob) as forward's arguments, and forward's outputs as IPC tensors again, cut
// back into each request's rows. Internal to the worker; includes libtorch. Pure functions of
// their arguments; thread-safe as long as the tensors are not shared.
#include <ATen/core/ivalue.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "forward_schema.hpp"
#include "model_runner.hpp"
#include "respawn/result.hpp"
#include "respawn/worker_error.hpp"
#include "torch_types.hpp"

namespace respawn::worker {

// A tensor input's bytes as a tensor on `device` (a copy: it outlives the blob). Its datatype
// must have a tensor type (not BYTES); a c10::TypeError otherwise.
torch::Tensor to_tensor(const TensorMeta& meta, std::string_view blob, torch::Device device);

// Argument k of forward for every request (`ordered[i]` is request i's inputs in forward's
// order): tensors concatenated along dim 0, BYTES inputs as one List[str] of every request's
// elements, then made what `schema_arg` takes (adapt_argument), when the schema is known.
// When k is 0, `rows` gets each request's share of the first dimension.
Result<torch::IValue, WorkerError> make_argument(
    std::size_t k, const std::vector<InferInput>& requests,
    const std::vector<std::vector<const TensorMeta*>>& ordered, torch::Device device,
    const ForwardArg* schema_arg, std::vector<std::int64_t>& rows);

// The name of output `index` of `count`.
using OutputNamer = std::function<std::string(std::size_t index, std::size_t count)>;

// The outputs as IPC tensors in one blob: tensors copied to the host, a List[str] as BYTES of
// shape [n]. An output dtype respawn has no datatype for is an internal error.
Result<TensorOutputs, WorkerError> encode_outputs(const std::vector<ForwardOutput>& outputs,
                                                  const OutputNamer& name);

// Each request's rows (`rows`, in order) of every output, encoded. With several requests every
// output's first dimension must be the total of `rows`.
Result<std::vector<TensorOutputs>, WorkerError> split_outputs(
    const std::vector<ForwardOutput>& outputs, const std::vector<std::int64_t>& rows,
    const OutputNamer& name);

}  // namespace respawn::worker
