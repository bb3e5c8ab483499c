#include "respawn/tensor_codec.hpp"

#include "respawn/json_util.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace respawn {
namespace {

constexpr std::size_t kAlign = 64;

struct TypeInfo {
  DataType type;
  std::string_view name;
  std::size_t size;
};

constexpr TypeInfo kTypes[] = {
    {DataType::BOOL, "BOOL", 1},   {DataType::UINT8, "UINT8", 1}, {DataType::INT8, "INT8", 1},
    {DataType::INT16, "INT16", 2}, {DataType::INT32, "INT32", 4}, {DataType::INT64, "INT64", 8},
    {DataType::FP32, "FP32", 4},   {DataType::FP64, "FP64", 8},
};

// kTypes is indexed by the enum's value and covers every DataType, in kAllDataTypes' order.
constexpr bool table_matches_enum() {
  if (std::size(kTypes) != kAllDataTypes.size()) return false;
  for (std::size_t i = 0; i < kAllDataTypes.size(); ++i) {
    if (kTypes[i].type != kAllDataTypes[i] || static_cast<std::size_t>(kTypes[i].type) != i) {
      return false;
    }
  }
  return true;
}
static_assert(table_matches_enum(), "kTypes must list every DataType in enum order");

const TypeInfo& info(DataType type) {
  return kTypes[static_cast<int>(type)];
}

void flatten(const nlohmann::json& data, std::vector<const nlohmann::json*>& out) {
  if (data.is_array()) {
    for (const auto& item : data) flatten(item, out);
  } else {
    out.push_back(&data);
  }
}

// nlohmann keeps parsed non-negative integers as unsigned and integers built in code as
// signed; both storages must be range-checked against T.
template <typename T>
bool put_integer(const nlohmann::json& v, char* out) {
  if (!v.is_number_integer()) return false;
  T t;
  if (v.is_number_unsigned()) {
    const auto x = v.get<std::uint64_t>();
    if (x > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return false;
    t = static_cast<T>(x);
  } else {
    const auto x = v.get<std::int64_t>();
    if (x < static_cast<std::int64_t>(std::numeric_limits<T>::min())) return false;
    if (x > 0 && static_cast<std::uint64_t>(x) > std::numeric_limits<T>::max()) return false;
    t = static_cast<T>(x);
  }
  std::memcpy(out, &t, sizeof(T));
  return true;
}

template <typename T>
bool put_float(const nlohmann::json& v, char* out) {
  if (!v.is_number()) return false;
  const double d = v.get<double>();
  // Narrowing an out-of-range double to float is undefined behaviour, not infinity.
  if (std::abs(d) > static_cast<double>(std::numeric_limits<T>::max())) return false;
  const T t = static_cast<T>(d);
  std::memcpy(out, &t, sizeof(T));
  return true;
}

// Writes one JSON element as `type` into out; false if the value does not fit the type.
bool put_element(DataType type, const nlohmann::json& v, char* out) {
  switch (type) {
    case DataType::BOOL:
      if (!v.is_boolean()) return false;
      *out = v.get<bool>() ? 1 : 0;
      return true;
    case DataType::UINT8:
      return put_integer<std::uint8_t>(v, out);
    case DataType::INT8:
      return put_integer<std::int8_t>(v, out);
    case DataType::INT16:
      return put_integer<std::int16_t>(v, out);
    case DataType::INT32:
      return put_integer<std::int32_t>(v, out);
    case DataType::INT64:
      return put_integer<std::int64_t>(v, out);
    case DataType::FP32:
      return put_float<float>(v, out);
    case DataType::FP64:
      return put_float<double>(v, out);
  }
  return false;
}

template <typename T>
T load(const char* p) {
  T t;
  std::memcpy(&t, p, sizeof(T));
  return t;
}

// The shortest decimal that reads back as the same float, as a double, so that JSON shows
// 0.1 rather than 0.10000000149011612.
nlohmann::json float_json(float f) {
  if (!std::isfinite(f)) return nullptr;
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, f);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

nlohmann::json element_json(DataType type, const char* p) {
  switch (type) {
    case DataType::BOOL:
      return *p != 0;
    case DataType::UINT8:
      return load<std::uint8_t>(p);
    case DataType::INT8:
      return load<std::int8_t>(p);
    case DataType::INT16:
      return load<std::int16_t>(p);
    case DataType::INT32:
      return load<std::int32_t>(p);
    case DataType::INT64:
      return load<std::int64_t>(p);
    case DataType::FP32:
      return float_json(load<float>(p));
    case DataType::FP64: {
      const double d = load<double>(p);
      return std::isfinite(d) ? nlohmann::json(d) : nlohmann::json(nullptr);
    }
  }
  return nullptr;
}

Error bad(const std::string& tensor, const std::string& what) {
  return make_error(ErrorKind::bad_input, "input '" + tensor + "': " + what);
}

Result<std::vector<std::int64_t>> parse_shape(const nlohmann::json& j) {
  if (!j.is_array()) return make_error(ErrorKind::bad_input, "shape must be an array");
  std::vector<std::int64_t> shape;
  for (const auto& d : j) {
    if (!d.is_number_integer() || d.get<std::int64_t>() < 0) {
      return make_error(ErrorKind::bad_input, "shape must hold non-negative integers");
    }
    shape.push_back(d.get<std::int64_t>());
  }
  return shape;
}

}  // namespace

std::optional<DataType> parse_datatype(std::string_view name) {
  for (const auto& t : kTypes) {
    if (t.name == name) return t.type;
  }
  return std::nullopt;
}

std::string_view to_string(DataType type) {
  return info(type).name;
}
std::size_t element_size(DataType type) {
  return info(type).size;
}

std::optional<std::size_t> element_count(const std::vector<std::int64_t>& shape,
                                         std::size_t max_elements) {
  std::size_t n = 1;
  for (const auto d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > max_elements / static_cast<std::size_t>(d)) return std::nullopt;
    n *= static_cast<std::size_t>(d);
  }
  return n;
}

nlohmann::json to_json(const TensorMeta& m) {
  return {{"name", m.name},
          {"datatype", to_string(m.datatype)},
          {"shape", m.shape},
          {"offset", m.offset},
          {"nbytes", m.nbytes}};
}

Result<TensorMeta> tensor_meta_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) {
    return make_error(ErrorKind::bad_input, "tensor needs a string 'name'");
  }
  TensorMeta m;
  m.name = j["name"].get<std::string>();
  const auto type = parse_datatype(json_get<std::string>(j, "datatype", ""));
  if (!type) return bad(m.name, "unsupported datatype");
  m.datatype = *type;
  auto shape = parse_shape(json_field(j, "shape"));
  if (!shape) return bad(m.name, shape.error().message);
  m.shape = std::move(*shape);
  for (auto [key, field] : {std::pair{"offset", &m.offset}, std::pair{"nbytes", &m.nbytes}}) {
    const auto& v = json_field(j, key);
    if (v.is_null()) continue;
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<std::int64_t>() < 0)) {
      return bad(m.name, std::string("'") + key + "' must be a non-negative integer");
    }
    *field = v.get<std::size_t>();
  }
  return m;
}

TensorMeta append_tensor(std::string& blob, std::string name, DataType type,
                         std::vector<std::int64_t> shape, std::string_view bytes) {
  blob.resize((blob.size() + kAlign - 1) / kAlign * kAlign, '\0');
  TensorMeta m{std::move(name), type, std::move(shape), blob.size(), bytes.size()};
  blob.append(bytes);
  return m;
}

Result<std::vector<TensorMeta>> pack_kserve_inputs(const nlohmann::json& inputs,
                                                   std::string& blob) {
  if (!inputs.is_array() || inputs.empty()) {
    return make_error(ErrorKind::bad_input, "'inputs' must be a non-empty array");
  }
  std::vector<TensorMeta> metas;
  std::vector<const nlohmann::json*> flat;
  for (const auto& in : inputs) {
    auto meta = tensor_meta_from_json(in);
    if (!meta) return meta.error();
    const auto count = element_count(meta->shape);
    if (!count) return bad(meta->name, "shape is too large");
    if (!in.contains("data")) return bad(meta->name, "missing 'data'");
    flat.clear();
    flatten(in["data"], flat);
    if (flat.size() != *count) {
      return bad(meta->name, "shape holds " + std::to_string(*count) + " elements but data has " +
                                 std::to_string(flat.size()));
    }
    const std::size_t size = element_size(meta->datatype);
    std::string bytes(*count * size, '\0');
    for (std::size_t i = 0; i < flat.size(); ++i) {
      if (!put_element(meta->datatype, *flat[i], bytes.data() + i * size)) {
        return bad(meta->name, "element " + std::to_string(i) + " is not a valid " +
                                   std::string(to_string(meta->datatype)));
      }
    }
    metas.push_back(append_tensor(blob, meta->name, meta->datatype, meta->shape, bytes));
  }
  return metas;
}

Result<std::vector<TensorMeta>> parse_tensor_list(const nlohmann::json& list,
                                                  std::string_view blob) {
  if (!list.is_array()) return make_error(ErrorKind::bad_input, "tensor list must be an array");
  std::vector<TensorMeta> metas;
  for (const auto& j : list) {
    auto meta = tensor_meta_from_json(j);
    if (!meta) return meta.error();
    const auto count = element_count(meta->shape);
    if (!count || *count * element_size(meta->datatype) != meta->nbytes ||
        meta->offset > blob.size() || meta->nbytes > blob.size() - meta->offset) {
      return bad(meta->name, "size does not match its shape or the payload");
    }
    metas.push_back(std::move(*meta));
  }
  return metas;
}

nlohmann::json tensor_to_kserve_json(const TensorMeta& m, std::string_view blob) {
  const std::size_t size = element_size(m.datatype);
  nlohmann::json data = nlohmann::json::array();
  auto& arr = data.get_ref<nlohmann::json::array_t&>();
  arr.reserve(m.nbytes / size);
  for (std::size_t at = m.offset; at < m.offset + m.nbytes; at += size) {
    arr.push_back(element_json(m.datatype, blob.data() + at));
  }
  return {{"name", m.name},
          {"datatype", to_string(m.datatype)},
          {"shape", m.shape},
          {"data", std::move(data)}};
}

}  // namespace respawn
