#include "http/triton.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>

#include "respawn/frame.hpp"
#include "respawn/json_util.hpp"

namespace respawn::triton {
namespace {

using nlohmann::json;

Error bad(const std::string& what) {
  return make_error(ErrorKind::bad_input, what);
}

// A boolean parameter of a `parameters` object: nullopt when absent, an error when not a bool.
Result<std::optional<bool>> bool_parameter(const json& params, const char* key,
                                           const std::string& where) {
  const auto& value = json_field(params, key);
  if (value.is_null()) return std::optional<bool>{};
  if (!value.is_boolean()) return bad(where + "'" + key + "' must be true or false");
  return std::optional<bool>{value.get<bool>()};
}

// Whether the body's binary part can be the IPC blob as it is: every input binary, each at an
// offset append_tensor would give it. (Sizes are checked by pack_inputs.)
bool fits_in_place(const json& inputs) {
  std::uint64_t at = 0;
  for (const auto& in : inputs) {
    const auto& size = json_field(json_field(in, "parameters"), "binary_data_size");
    if (!size.is_number_unsigned() || at % kTensorAlign != 0) return false;
    at += size.get<std::uint64_t>();
  }
  return true;
}

// An input whose bytes lie in shared memory: read straight into the blob, at the offset
// append_tensor would give them.
Result<TensorMeta> pack_shared_memory_input(const json& in, const SharedMemoryRef& ref,
                                            std::string& blob) {
  auto meta = tensor_meta_from_json(in);
  if (!meta) return meta.error();
  const std::string what = "input '" + meta->name + "'";
  if (in.contains("data")) return bad(what + " has both data and shared_memory_region");
  const auto count = element_count(meta->shape);
  if (!count) return bad(what + ": shape is too large");
  // A fixed-size type's bytes are known from the shape: checked before anything is read.
  if (const auto size = element_size(meta->datatype);
      size != 0 && (*count > std::numeric_limits<std::uint64_t>::max() / size ||
                    ref.byte_size != *count * size)) {
    return bad(what + ": shared_memory_byte_size is " + std::to_string(ref.byte_size) + " but " +
               std::string(to_string(meta->datatype)) + " " + std::to_string(*count) +
               " elements take " + std::to_string(static_cast<unsigned long long>(*count) * size) +
               " bytes");
  }
  const std::size_t at = next_tensor_offset(blob.size());
  // Nothing larger than a frame could reach the worker: refused before it is read.
  if (ref.byte_size > ipc::kDefaultMaxFrameBytes - at) {
    return make_error(ErrorKind::too_large,
                      what + ": the input tensors exceed the worker's frame limit of " +
                          std::to_string(ipc::kDefaultMaxFrameBytes) + " bytes");
  }
  blob.resize(at + ref.byte_size, '\0');
  if (auto error = ref.region->read(ref.offset, ref.byte_size, blob.data() + at, what)) {
    return *error;
  }
  const auto bytes = std::string_view(blob).substr(at);
  if (auto why = check_raw_tensor(meta->datatype, *count, bytes)) return bad(what + ": " + *why);
  meta->offset = at;
  meta->nbytes = ref.byte_size;
  return std::move(*meta);
}

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Calls f with a zero of the C++ type that holds an element of `type` (float for FP16 and
// BF16); nothing for BOOL and BYTES, which have no order to rank by.
template <typename F>
void with_element_type(DataType type, F f) {
  switch (type) {
    case DataType::UINT8:
      return f(std::uint8_t{});
    case DataType::UINT16:
      return f(std::uint16_t{});
    case DataType::UINT32:
      return f(std::uint32_t{});
    case DataType::UINT64:
      return f(std::uint64_t{});
    case DataType::INT8:
      return f(std::int8_t{});
    case DataType::INT16:
      return f(std::int16_t{});
    case DataType::INT32:
      return f(std::int32_t{});
    case DataType::INT64:
      return f(std::int64_t{});
    case DataType::FP16:
    case DataType::BF16:
    case DataType::FP32:
      return f(float{});
    case DataType::FP64:
      return f(double{});
    case DataType::BOOL:
    case DataType::BYTES:
      return;
  }
}

// The rows of `bytes` (elements of type `type`, read as T), each ranked, appended to `out` as
// "value:index[:label]" elements. A heap of the k best so far: memory for k classes, not for a
// copy of the row (an output can be 256 MiB).
template <typename T>
void append_classes(DataType type, std::string_view bytes, std::size_t rows, std::size_t per_row,
                    std::size_t k, const std::vector<std::string>& labels, std::string& out) {
  const std::size_t size = element_size(type);
  const auto value = [&](std::size_t i) -> T {
    const char* p = bytes.data() + i * size;
    if (type == DataType::FP16) return static_cast<T>(fp16_bits_to_float(load<std::uint16_t>(p)));
    if (type == DataType::BF16) return static_cast<T>(bf16_bits_to_float(load<std::uint16_t>(p)));
    return load<T>(p);
  };
  using Class = std::pair<T, std::size_t>;  // value, index in the row
  // Whether a ranks before b: the higher value, the lower index among equals, NaN last.
  const auto before = [](const Class& a, const Class& b) {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a.first) || std::isnan(b.first)) {
        return !std::isnan(a.first) || (std::isnan(b.first) && a.second < b.second);
      }
    }
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (rows == 0 || k == 0) return;  // (with no rows, per_row and so k may be anything)
  std::vector<Class> best;          // a heap whose front ranks last
  best.reserve(k);
  for (std::size_t row = 0; row < rows; ++row) {
    best.clear();
    for (std::size_t i = 0; i < per_row; ++i) {
      const Class c{value(row * per_row + i), i};
      if (best.size() < k) {
        best.push_back(c);
        std::push_heap(best.begin(), best.end(), before);
      } else if (before(c, best.front())) {
        std::pop_heap(best.begin(), best.end(), before);
        best.back() = c;
        std::push_heap(best.begin(), best.end(), before);
      }
    }
    std::sort_heap(best.begin(), best.end(), before);  // the first ranks first
    for (const auto& [v, index] : best) {
      // Triton's format: std::to_string of the element's type (so floats print as "%f").
      std::string text = std::to_string(v) + ":" + std::to_string(index);
      if (index < labels.size() && !labels[index].empty()) text += ":" + labels[index];
      append_bytes_element(out, text);
    }
  }
}

}  // namespace

Result<std::optional<std::size_t>> json_header_length(const HttpRequest& request) {
  const auto it = request.find(kHeaderLength);
  if (it == request.end()) return std::optional<std::size_t>{};
  const std::string_view text = it->value();
  std::size_t length = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) {
    return bad(std::string(kHeaderLength) + " must be a number of bytes");
  }
  if (length > request.body().size()) {
    return bad(std::string(kHeaderLength) + " is " + std::to_string(length) +
               " but the body has only " + std::to_string(request.body().size()) + " bytes");
  }
  return std::optional<std::size_t>{length};
}

Result<PackedInputs> pack_inputs(const json& inputs, std::string_view binary, std::string& blob,
                                 const SharedMemoryRegistry& shm) {
  if (!inputs.is_array() || inputs.empty()) return bad("'inputs' must be a non-empty array");
  const bool any_special = std::any_of(inputs.begin(), inputs.end(), [](const json& in) {
    const auto& params = json_field(in, "parameters");
    return !json_field(params, "binary_data_size").is_null() ||
           !json_field(params, "shared_memory_region").is_null();
  });
  if (!any_special && binary.empty()) {
    auto metas = pack_kserve_inputs(inputs, blob);
    if (!metas) return metas.error();
    return PackedInputs{std::move(*metas), false};
  }
  PackedInputs packed{{}, fits_in_place(inputs)};
  auto& metas = packed.tensors;
  std::size_t at = 0;
  for (const auto& in : inputs) {
    const auto& params = json_field(in, "parameters");
    const std::string name = json_get<std::string>(in, "name", "");
    auto region = shm.ref(params, "input '" + name + "'");
    if (!region) return region.error();
    if (*region) {
      if (!json_field(params, "binary_data_size").is_null()) {
        return bad("input '" + name + "' has both binary_data_size and shared_memory_region");
      }
      auto meta = pack_shared_memory_input(in, **region, blob);
      if (!meta) return meta.error();
      metas.push_back(std::move(*meta));
      continue;
    }
    const auto& size = json_field(params, "binary_data_size");
    if (size.is_null()) {
      // A JSON input among binary ones (rare, and small: the large ones go binary).
      auto meta = pack_kserve_inputs(json::array({in}), blob);
      if (!meta) return meta.error();
      metas.push_back(std::move(meta->front()));
      continue;
    }
    auto meta = tensor_meta_from_json(in);
    if (!meta) return meta.error();
    if (in.contains("data")) return bad("input '" + name + "' has both data and binary_data_size");
    if (!size.is_number_unsigned()) {
      return bad("input '" + name + "': binary_data_size must be a non-negative integer");
    }
    const auto n = size.get<std::uint64_t>();
    if (n > binary.size() - at) {
      return bad("input '" + name + "': binary_data_size " + std::to_string(n) +
                 " runs past the end of the body (" + std::to_string(binary.size() - at) +
                 " bytes left)");
    }
    const auto bytes = binary.substr(at, n);
    const auto offset = at;
    at += n;
    const auto count = element_count(meta->shape);
    if (!count) return bad("input '" + name + "': shape is too large");
    if (auto why = check_raw_tensor(meta->datatype, *count, bytes)) {
      return bad("input '" + name + "': " + *why);
    }
    if (packed.in_place) {
      meta->offset = offset;
      meta->nbytes = n;
      metas.push_back(std::move(*meta));
    } else {
      metas.push_back(append_tensor(blob, meta->name, meta->datatype, meta->shape, bytes));
    }
  }
  if (at != binary.size()) {
    return bad("the body has " + std::to_string(binary.size() - at) +
               " bytes of binary data that no input's binary_data_size claims");
  }
  return packed;
}

Result<OutputSelection> requested_outputs(const json& body, const SharedMemoryRegistry& shm) {
  OutputSelection selection;
  auto binary_default =
      bool_parameter(json_field(body, "parameters"), "binary_data_output", "parameter ");
  if (!binary_default) return binary_default.error();
  selection.binary_default = binary_default->value_or(false);
  if (!body.contains("outputs")) return selection;
  if (!body["outputs"].is_array()) return bad("'outputs' must be an array");
  for (const auto& o : body["outputs"]) {
    if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) {
      return bad("each of 'outputs' needs a string 'name'");
    }
    const std::string name = o["name"];
    const auto& params = json_field(o, "parameters");
    const auto& classes = json_field(params, "classification");
    const bool counts = classes.is_number_unsigned() ||
                        (classes.is_number_integer() && classes.get<std::int64_t>() >= 0);
    if (!classes.is_null() && (!counts || classes.get<std::uint64_t>() > UINT32_MAX)) {
      return bad("output '" + name +
                 "': classification must be a non-negative integer (how many classes)");
    }
    auto region = shm.ref(params, "output '" + name + "'");
    if (!region) return region.error();
    auto binary = bool_parameter(params, "binary_data", "output '" + name + "': ");
    if (!binary) return binary.error();
    selection.outputs.push_back(
        {name, *binary, std::move(*region), classes.is_null() ? 0 : classes.get<std::uint32_t>()});
  }
  return selection;
}

Result<Classes> classify(const TensorMeta& tensor, std::string_view bytes, std::uint32_t k,
                         const std::vector<std::string>& labels) {
  if (tensor.datatype == DataType::BOOL || tensor.datatype == DataType::BYTES) {
    return bad("output '" + tensor.name + "': classification needs a numeric output, not " +
               std::string(to_string(tensor.datatype)));
  }
  const auto count = element_count(tensor.shape);
  if (!count || bytes.size() != *count * element_size(tensor.datatype)) {
    return make_error(ErrorKind::internal, "output '" + tensor.name + "' does not fit its shape");
  }
  const bool batched = tensor.shape.size() >= 2;
  const auto per_row = element_count(
      batched ? std::vector<std::int64_t>(tensor.shape.begin() + 1, tensor.shape.end())
              : tensor.shape);
  const std::size_t rows = batched ? static_cast<std::size_t>(tensor.shape[0]) : 1;
  const std::size_t top = std::min<std::size_t>(k, *per_row);
  // Each class is a string of ~20 bytes and a ranking entry of 16: a bound keeps a client that
  // asks for every class of a huge output from costing the supervisor gigabytes.
  constexpr std::size_t kMaxClasses = std::size_t{1} << 20;
  if (rows != 0 && top > kMaxClasses / rows) {
    return bad("output '" + tensor.name + "': classification of " + std::to_string(rows) +
               " rows of " + std::to_string(top) + " classes is more than the " +
               std::to_string(kMaxClasses) + " classes an answer may hold");
  }
  Classes classes;
  classes.shape = {static_cast<std::int64_t>(top)};
  if (batched) classes.shape.insert(classes.shape.begin(), tensor.shape[0]);
  with_element_type(tensor.datatype, [&](auto zero) {
    append_classes<decltype(zero)>(tensor.datatype, bytes, rows, *per_row, top, labels,
                                   classes.bytes);
  });
  return classes;
}

json model_config(const json& info, const ConfigContext& context) {
  const auto& inputs = json_field(info, "inputs");
  const auto& outputs = json_field(info, "outputs");
  const auto batch_first = [](const json& tensors) {
    return std::all_of(tensors.begin(), tensors.end(), [](const json& t) {
      const auto& shape = json_field(t, "shape");
      return shape.is_array() && !shape.empty() && shape[0] == -1;
    });
  };
  const bool batched = (inputs.is_array() && !inputs.empty()) && batch_first(inputs) &&
                       (!outputs.is_array() || batch_first(outputs));
  const auto label_file = context.labels_file.empty()
                              ? std::string()
                              : std::filesystem::path(context.labels_file).filename().string();
  // Triton's names: TYPE_ and the KServe name, but TYPE_STRING for BYTES.
  const auto tensors = [&](const json& list, bool output) {
    auto out = json::array();
    if (!list.is_array()) return out;
    for (const auto& t : list) {
      const std::string datatype = json_get<std::string>(t, "datatype", "");
      auto dims = json_field(t, "shape").is_array() ? json_field(t, "shape") : json::array();
      if (batched) dims.erase(dims.begin());
      // One value per batch item: Triton writes that as dims [1] reshaped to [].
      const bool scalar = batched && dims.empty();
      json entry = {{"name", json_get<std::string>(t, "name", "")},
                    {"data_type", datatype == "BYTES" ? "TYPE_STRING" : "TYPE_" + datatype},
                    {"dims", scalar ? json::array({1}) : std::move(dims)},
                    {"is_shape_tensor", false}};
      if (scalar) entry["reshape"] = {{"shape", json::array()}};
      if (output) {
        entry["label_filename"] = label_file;
      } else {
        entry["format"] = "FORMAT_NONE";
        entry["allow_ragged_batch"] = false;
        entry["optional"] = false;
      }
      out.push_back(std::move(entry));
    }
    return out;
  };
  const bool gpu = json_get<std::string>(info, "device", "cpu").rfind("cuda", 0) == 0;
  json instance = {
      {"name", context.name + "_0"}, {"kind", gpu ? "KIND_GPU" : "KIND_CPU"}, {"count", 1}};
  if (gpu) instance["gpus"] = {0};
  json config = {{"name", context.name},
                 {"platform", context.platform},
                 {"backend", "pytorch"},
                 {"version_policy", {{"latest", {{"num_versions", 1}}}}},
                 {"max_batch_size", batched ? context.max_batch_size : 0},
                 {"input", tensors(inputs, false)},
                 {"output", tensors(outputs, true)},
                 {"instance_group", {instance}},
                 {"model_transaction_policy", {{"decoupled", false}}}};
  if (batched && context.max_batch_size > 1) {
    config["dynamic_batching"] = {{"max_queue_delay_microseconds", context.max_batch_delay_us},
                                  {"preserve_ordering", false}};
  }
  return config;
}

Result<std::vector<std::string>> read_labels(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return bad("cannot read the labels file " + path);
  std::vector<std::string> labels;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(std::move(line));
  }
  if (in.bad()) return bad("cannot read the labels file " + path);
  return labels;
}

Result<HttpResponse> infer_response(json reply, const json& worker_meta, std::string_view blob,
                                    const OutputSelection& selection,
                                    const std::vector<std::string>& labels) {
  auto tensors = parse_tensor_list(json_field(worker_meta, "outputs"), blob);
  if (!tensors) {
    return make_error(ErrorKind::internal,
                      "the worker sent a malformed result: " + tensors.error().message);
  }
  // The outputs to send, in the order asked (the model's order when none were named), each
  // with its bytes (the worker's, or its classification), binary or not, or written to shared
  // memory (`shm`). `tensor.offset` is 0: the offset into `bytes`.
  struct Chosen {
    TensorMeta tensor;
    std::string_view bytes;
    bool binary;
    const SharedMemoryRef* shm;
  };
  const auto as_sent = [&](const TensorMeta& t, bool binary, const SharedMemoryRef* shm) {
    TensorMeta meta = t;
    meta.offset = 0;
    return Chosen{std::move(meta), blob.substr(t.offset, t.nbytes), binary, shm};
  };
  std::vector<Chosen> chosen;
  std::deque<std::string> classified;  // the bytes of classification answers
  if (selection.outputs.empty()) {
    for (const auto& t : *tensors) chosen.push_back(as_sent(t, selection.binary_default, nullptr));
  }
  for (const auto& want : selection.outputs) {
    const auto found = std::find_if(tensors->begin(), tensors->end(),
                                    [&](const TensorMeta& t) { return t.name == want.name; });
    if (found == tensors->end()) return bad("the model has no output '" + want.name + "'");
    auto& c = chosen.emplace_back(
        as_sent(*found, !want.shm && want.binary.value_or(selection.binary_default),
                want.shm ? &*want.shm : nullptr));
    if (want.classification > 0) {
      auto classes = classify(*found, c.bytes, want.classification, labels);
      if (!classes) return classes.error();
      c.bytes = classified.emplace_back(std::move(classes->bytes));
      c.tensor.datatype = DataType::BYTES;
      c.tensor.shape = std::move(classes->shape);
      c.tensor.nbytes = c.bytes.size();
    }
  }
  auto& outputs = reply["outputs"] = json::array();
  // An output without `data`: its bytes are elsewhere, as `parameters` say.
  const auto described = [](const TensorMeta& t, json parameters) {
    return json{{"name", t.name},
                {"datatype", to_string(t.datatype)},
                {"shape", t.shape},
                {"parameters", std::move(parameters)}};
  };
  std::size_t raw_bytes = 0;
  for (const auto& [t, bytes, binary, shm] : chosen) {
    if (shm) {
      const std::string what = "output '" + t.name + "'";
      if (t.nbytes > shm->byte_size) {
        return bad(what + " has " + std::to_string(t.nbytes) + " bytes, more than the " +
                   std::to_string(shm->byte_size) + " of its shared_memory_byte_size");
      }
      if (auto error = shm->region->write(shm->offset, bytes, what)) return *error;
      outputs.push_back(described(t, {{"shared_memory_region", shm->region->name()},
                                      {"shared_memory_byte_size", t.nbytes},
                                      {"shared_memory_offset", shm->offset}}));
    } else if (!binary) {
      outputs.push_back(tensor_to_kserve_json(t, bytes));
    } else {
      outputs.push_back(described(t, {{"binary_data_size", t.nbytes}}));
      raw_bytes += t.nbytes;
    }
  }
  auto res = json_response(http::status::ok, reply);
  if (std::none_of(chosen.begin(), chosen.end(), [](const Chosen& c) { return c.binary; })) {
    return res;
  }
  res.set(kHeaderLength, std::to_string(res.body().size()));
  res.set(http::field::content_type, "application/octet-stream");
  res.body().reserve(res.body().size() + raw_bytes);
  for (const auto& c : chosen) {
    if (c.binary) res.body().append(c.bytes);
  }
  return res;
}

}  // namespace respawn::triton
