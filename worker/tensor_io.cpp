#include "tensor_io.hpp"

#include <c10/util/Exception.h>
#include <torch/torch.h>

namespace respawn::worker {
namespace {

WorkerError internal(std::string message) {
  return WorkerError{WorkerErrorKind::internal, std::move(message), true};
}

// A BYTES input's elements, appended in row-major order (parse_tensor_list checked the layout
// when the request arrived).
void append_strings(const TensorMeta& meta, std::string_view blob, c10::List<std::string>& list) {
  const auto elements = bytes_elements(blob.substr(meta.offset, meta.nbytes));
  if (!elements) return;
  for (const auto e : *elements) list.push_back(std::string(e));
}

}  // namespace

torch::Tensor to_tensor(const TensorMeta& meta, std::string_view blob, torch::Device device) {
  const auto type = to_scalar_type(meta.datatype);
  TORCH_CHECK_TYPE(type, "datatype ", to_string(meta.datatype), " has no tensor type here");
  // from_blob does not copy; the copy to the device owns memory that outlives `blob`.
  return torch::from_blob(const_cast<char*>(blob.data() + meta.offset), meta.shape,
                          torch::dtype(*type))
      .to(device, /*non_blocking=*/false, /*copy=*/true);
}

Result<torch::IValue, WorkerError> make_argument(
    std::size_t k, const std::vector<InferInput>& requests,
    const std::vector<std::vector<const TensorMeta*>>& ordered, torch::Device device,
    const ForwardArg* schema_arg, std::vector<std::int64_t>& rows) {
  torch::IValue arg;
  if (ordered[0][k]->datatype == DataType::BYTES) {
    c10::List<std::string> list;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      append_strings(*ordered[i][k], requests[i].blob, list);
    }
    arg = std::move(list);
  } else {
    std::vector<torch::Tensor> parts;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      parts.push_back(to_tensor(*ordered[i][k], requests[i].blob, device));
    }
    arg = parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
  }
  for (std::size_t i = 0; k == 0 && i < requests.size(); ++i) {
    const auto& shape = ordered[i][k]->shape;
    rows.push_back(shape.empty() ? 1 : shape[0]);
  }
  if (schema_arg) {
    if (auto why = adapt_argument(*schema_arg, arg)) {
      return WorkerError{WorkerErrorKind::bad_input, *why, true};
    }
  }
  return arg;
}

Result<TensorOutputs, WorkerError> encode_outputs(const std::vector<ForwardOutput>& outputs,
                                                  const OutputNamer& name) {
  TensorOutputs out;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const std::string output = name(i, outputs.size());
    if (outputs[i].is_bytes()) {
      std::string raw;
      for (const auto& s : outputs[i].strings) {
        if (!append_bytes_element(raw, s)) {
          return internal("output '" + output + "' holds a string of 4 GiB or more");
        }
      }
      const auto n = static_cast<std::int64_t>(outputs[i].strings.size());
      out.tensors.push_back(append_tensor(out.blob, output, DataType::BYTES, {n}, raw));
      continue;
    }
    const auto host = outputs[i].tensor.to(torch::kCPU).contiguous();
    const auto type = from_scalar_type(host.scalar_type());
    if (!type) {
      return internal("unsupported output dtype " + std::string(c10::toString(host.scalar_type())));
    }
    const std::string_view bytes(static_cast<const char*>(host.data_ptr()), host.nbytes());
    out.tensors.push_back(append_tensor(out.blob, output, *type, host.sizes().vec(), bytes));
  }
  return out;
}

Result<std::vector<TensorOutputs>, WorkerError> split_outputs(
    const std::vector<ForwardOutput>& outputs, const std::vector<std::int64_t>& rows,
    const OutputNamer& name) {
  using Out = std::vector<TensorOutputs>;
  if (rows.size() == 1) {
    auto one = encode_outputs(outputs, name);
    if (!one) return one.error();
    return Out{std::move(*one)};
  }
  std::int64_t total = 0;
  for (auto r : rows) total += r;
  for (const auto& o : outputs) {
    if (o.rows() != total) {
      return internal("an output's first dimension is not the batch; cannot split it");
    }
  }
  Out out;
  std::int64_t at = 0;
  for (auto r : rows) {
    std::vector<ForwardOutput> mine;
    for (const auto& o : outputs) mine.push_back(o.narrow(at, r));
    auto encoded = encode_outputs(mine, name);
    if (!encoded) return encoded.error();
    out.push_back(std::move(*encoded));
    at += r;
  }
  return out;
}

}  // namespace respawn::worker
