#pragma once
// KServe v2 infer bodies with Triton's binary tensor data extension: a request (and an answer)
// may be a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensor bytes,
// each tensor's share named by `"parameters": {"binary_data_size": N}` in the header, in input
// (output) order. The raw bytes go to the worker as they lie in the body when they can (see
// pack_inputs), else copied once into the IPC blob; an answer's are copied once out of it. Pure
// functions; thread-safe. docs/http-api.md "Binary tensor data".
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "http/http_types.hpp"
#include "http/shared_memory.hpp"
#include "respawn/tensor_codec.hpp"

namespace respawn::triton {

inline constexpr const char* kHeaderLength = "Inference-Header-Content-Length";

// The length of the JSON header of a binary request: nullopt without the header; bad_input if
// it is not a decimal number of bytes within the body.
Result<std::optional<std::size_t>> json_header_length(const HttpRequest& request);

// Packs `inputs` into `blob`: an input with `binary_data_size` takes its bytes from `binary`
// (consumed in order, all of it), one with `shared_memory_region` from that region of `shm`,
// the others carry JSON `data`. When every input is binary and each starts at a kTensorAlign
// boundary of `binary` (a single input always does), nothing is copied: `binary` itself is the
// blob, `blob` stays empty, and `in_place` says so. Errors are bad_input and name the input.
struct PackedInputs {
  std::vector<TensorMeta> tensors;
  bool in_place = false;  // the tensors' offsets are into `binary`, not `blob`
};
Result<PackedInputs> pack_inputs(const nlohmann::json& inputs, std::string_view binary,
                                 std::string& blob,
                                 const SharedMemoryRegistry& shm = SharedMemoryRegistry::off());

// Which outputs a request wants and in which form.
struct OutputRequest {
  std::string name;
  std::optional<bool> binary;          // the output's own `binary_data`, if given
  std::optional<SharedMemoryRef> shm;  // written there, not sent, when given
  // Triton's classification extension (`"classification": k`): instead of the tensor, its k
  // highest values per batch row as BYTES "value:index[:label]"; 0 = the tensor itself.
  std::uint32_t classification = 0;
};
struct OutputSelection {
  std::vector<OutputRequest> outputs;  // empty: every output
  bool binary_default = false;         // `parameters.binary_data_output`
};
Result<OutputSelection> requested_outputs(
    const nlohmann::json& body, const SharedMemoryRegistry& shm = SharedMemoryRegistry::off());

// The 200 answer: `reply` (model_name, model_version, id) plus the selected outputs, as JSON
// or, when any output is binary, as a JSON header and raw bytes. `labels[i]` names class i in
// classification answers. Errors: the worker's tensor list is malformed (internal); it names
// no such output, or a classified output is not numeric (bad_input).
Result<HttpResponse> infer_response(nlohmann::json reply, const nlohmann::json& worker_meta,
                                    std::string_view blob, const OutputSelection& selection,
                                    const std::vector<std::string>& labels = {});

// Classification of one numeric tensor (in `bytes`), as Triton does it: a tensor of rank 2 or
// more is [batch, ...], and each batch row's elements are ranked; a smaller one is one row. The
// k highest of a row (ties: the lower index first; NaN lowest), each as the BYTES element
// "<value>:<index>[:<label>]" with the value printed by std::to_string of the element's type.
// The result's shape is [batch, min(k, n)] or [min(k, n)] for rows of n elements.
struct Classes {
  std::vector<std::int64_t> shape;
  std::string bytes;  // the BYTES layout
};
Result<Classes> classify(const TensorMeta& tensor, std::string_view bytes, std::uint32_t k,
                         const std::vector<std::string>& labels);

// Triton's model configuration (GET /v2/models/{m}/config, as tritonclient's get_model_config
// reads it) of what the worker reported of the model (`info`: inputs, outputs, device). The
// model is batched, as in Triton, when it declares tensors and each one's first dimension is
// -1: then `max_batch_size` is the supervisor's and `dims` leave that dimension out.
struct ConfigContext {
  std::string name;
  std::string platform;
  std::uint64_t max_batch_size = 0;
  std::uint64_t max_batch_delay_us = 0;
  std::string labels_file;  // --labels, named as the outputs' label_filename
};
nlohmann::json model_config(const nlohmann::json& info, const ConfigContext& context);

// Class labels for classification, one per line (line i names class i; an empty line, none).
Result<std::vector<std::string>> read_labels(const std::string& path);

}  // namespace respawn::triton
