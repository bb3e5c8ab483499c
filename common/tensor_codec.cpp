#include "respawn/tensor_codec.hpp"

#include "respawn/json_util.hpp"
#include "respawn/utf8.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

namespace respawn {
namespace {

constexpr std::size_t kLengthPrefix = 4;  // BYTES: each element's little-endian u32 length

struct TypeInfo {
  DataType type;
  std::string_view name;
  std::size_t size;  // 0: variable (BYTES)
};

constexpr TypeInfo kTypes[] = {
    {DataType::BOOL, "BOOL", 1},     {DataType::UINT8, "UINT8", 1},
    {DataType::UINT16, "UINT16", 2}, {DataType::UINT32, "UINT32", 4},
    {DataType::UINT64, "UINT64", 8}, {DataType::INT8, "INT8", 1},
    {DataType::INT16, "INT16", 2},   {DataType::INT32, "INT32", 4},
    {DataType::INT64, "INT64", 8},   {DataType::FP16, "FP16", 2},
    {DataType::FP32, "FP32", 4},     {DataType::FP64, "FP64", 8},
    {DataType::BF16, "BF16", 2},     {DataType::BYTES, "BYTES", 0},
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

// The largest finite FP16 and BF16 values: a JSON number beyond them is refused.
constexpr double kFp16Max = 65504.0;
constexpr double kBf16Max = 3.3895313892515355e38;  // (2 - 2^-7) * 2^127

// x >= 0 rounded to an integer, ties to even, whatever the FPU's rounding mode.
double round_half_even(double x) {
  const double low = std::floor(x);
  const double diff = x - low;  // exact: x < 2^53 wherever this is used
  if (diff > 0.5) return low + 1;
  if (diff < 0.5) return low;
  return std::fmod(low, 2.0) == 0 ? low : low + 1;
}

// `value` rounded to a binary format with `mantissa` stored fraction bits and `exponent_bits`
// exponent bits (binary16: 10 and 5; bfloat16: 7 and 8), ties to even, as its bit pattern.
std::uint16_t to_small_float(double value, int mantissa, int exponent_bits) {
  const std::uint32_t sign = std::signbit(value) ? 0x8000u : 0u;
  const std::uint32_t inf = ((1u << exponent_bits) - 1) << mantissa;
  if (std::isnan(value)) return static_cast<std::uint16_t>(sign | inf | (1u << (mantissa - 1)));
  const double a = std::fabs(value);
  if (std::isinf(a)) return static_cast<std::uint16_t>(sign | inf);
  if (a == 0) return static_cast<std::uint16_t>(sign);
  const int bias = (1 << (exponent_bits - 1)) - 1;
  int e = 0;
  std::frexp(a, &e);                          // a in [2^(e-1), 2^e)
  const int exp = std::max(e - 1, 1 - bias);  // a subnormal has the smallest normal's scale
  // The significand with `mantissa` fraction bits, in [0, 2^(mantissa+1)]: scaling by a power of
  // two is exact here. A subnormal's comes out below 2^mantissa, and a carry past the top bit
  // moves into the exponent by the addition below, as it should.
  const double q = round_half_even(std::ldexp(a, mantissa - exp));
  const auto bits =
      (static_cast<std::uint32_t>(exp + bias - 1) << mantissa) + static_cast<std::uint32_t>(q);
  return static_cast<std::uint16_t>(sign | std::min(bits, inf));
}

void flatten(const nlohmann::json& data, std::vector<const nlohmann::json*>& out) {
  if (data.is_array()) {
    for (const auto& item : data) flatten(item, out);
  } else {
    out.push_back(&data);
  }
}

// A JsonNumber with the part of nlohmann::json's interface that the packing below uses, so that
// both kinds of element go through the same checks.
struct NumberView {
  JsonNumber n;
  bool is_boolean() const { return false; }
  bool is_number() const { return true; }
  bool is_number_integer() const { return n.kind != JsonNumber::Kind::floating; }
  bool is_number_unsigned() const { return n.kind == JsonNumber::Kind::unsigned_integer; }
  template <typename T>
  T get() const {
    switch (n.kind) {
      case JsonNumber::Kind::unsigned_integer:
        return static_cast<T>(n.u);
      case JsonNumber::Kind::signed_integer:
        return static_cast<T>(n.i);
      case JsonNumber::Kind::floating:
        break;
    }
    return static_cast<T>(n.d);
  }
};

// nlohmann keeps parsed non-negative integers as unsigned and integers built in code as
// signed; both storages must be range-checked against T.
template <typename T, typename V>
bool put_integer(const V& v, char* out) {
  if (!v.is_number_integer()) return false;
  T t;
  if (v.is_number_unsigned()) {
    const auto x = v.template get<std::uint64_t>();
    if (x > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return false;
    t = static_cast<T>(x);
  } else {
    const auto x = v.template get<std::int64_t>();
    if (x < static_cast<std::int64_t>(std::numeric_limits<T>::min())) return false;
    if (x > 0 && static_cast<std::uint64_t>(x) > std::numeric_limits<T>::max()) return false;
    t = static_cast<T>(x);
  }
  std::memcpy(out, &t, sizeof(T));
  return true;
}

template <typename T, typename V>
bool put_float(const V& v, char* out) {
  if (!v.is_number()) return false;
  const double d = v.template get<double>();
  // Narrowing an out-of-range double to float is undefined behaviour, not infinity.
  if (std::abs(d) > static_cast<double>(std::numeric_limits<T>::max())) return false;
  const T t = static_cast<T>(d);
  std::memcpy(out, &t, sizeof(T));
  return true;
}

// FP16 and BF16, rounded straight from the JSON double (through float it could round twice).
template <typename V>
bool put_small_float(const V& v, double max, std::uint16_t (*round)(double), char* out) {
  if (!v.is_number()) return false;
  const double d = v.template get<double>();
  if (std::abs(d) > max) return false;
  const std::uint16_t bits = round(d);
  std::memcpy(out, &bits, sizeof bits);
  return true;
}

// Writes one JSON element of a fixed-size `type` into out; false if the value does not fit.
template <typename V>
bool put_element(DataType type, const V& v, char* out) {
  switch (type) {
    case DataType::BOOL:
      if (!v.is_boolean()) return false;
      *out = v.template get<bool>() ? 1 : 0;
      return true;
    case DataType::UINT8:
      return put_integer<std::uint8_t>(v, out);
    case DataType::UINT16:
      return put_integer<std::uint16_t>(v, out);
    case DataType::UINT32:
      return put_integer<std::uint32_t>(v, out);
    case DataType::UINT64:
      return put_integer<std::uint64_t>(v, out);
    case DataType::INT8:
      return put_integer<std::int8_t>(v, out);
    case DataType::INT16:
      return put_integer<std::int16_t>(v, out);
    case DataType::INT32:
      return put_integer<std::int32_t>(v, out);
    case DataType::INT64:
      return put_integer<std::int64_t>(v, out);
    case DataType::FP16:
      return put_small_float(v, kFp16Max, to_fp16_bits, out);
    case DataType::FP32:
      return put_float<float>(v, out);
    case DataType::FP64:
      return put_float<double>(v, out);
    case DataType::BF16:
      return put_small_float(v, kBf16Max, to_bf16_bits, out);
    case DataType::BYTES:
      return false;  // variable size: pack_bytes
  }
  return false;
}

// The JSON `data` of a tensor (`count` elements, `element(i)` the i-th) as raw bytes; nullopt
// with `bad` set to the index of the first element that is not a valid `type`.
template <typename Element>
std::optional<std::string> pack_data(DataType type, std::size_t count, Element element,
                                     std::size_t& bad) {
  std::string bytes;
  const std::size_t size = element_size(type);
  if (size != 0) bytes.resize(count * size);
  for (bad = 0; bad < count; ++bad) {
    const auto& v = element(bad);
    if (size != 0) {
      if (!put_element(type, v, bytes.data() + bad * size)) return std::nullopt;
    } else if constexpr (std::is_same_v<std::decay_t<decltype(v)>, nlohmann::json>) {
      if (!v.is_string() ||
          !append_bytes_element(bytes, v.template get_ref<const nlohmann::json::string_t&>())) {
        return std::nullopt;
      }
    } else {
      return std::nullopt;  // a BYTES element must be a string
    }
  }
  return bytes;
}

// The numbers of a `data` array that parse_infer_body read, or null when `data` is no such
// value.
const nlohmann::json::binary_t* json_numbers(const nlohmann::json& data) {
  if (!data.is_binary()) return nullptr;
  const auto& binary = data.get_binary();
  if (!binary.has_subtype() || binary.subtype() != kJsonNumbersSubtype) return nullptr;
  return &binary;
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

// The same for FP16 and BF16: the fewest significant digits that round back to `bits`. A whole
// number below 2^24 prints exactly instead (65504, not the shorter 65500 that rounds to it).
nlohmann::json small_float_json(std::uint16_t bits, float (*widen)(std::uint16_t),
                                std::uint16_t (*round)(double)) {
  const float f = widen(bits);
  if (!std::isfinite(f)) return nullptr;
  if (std::abs(f) < 16777216.0f && std::trunc(f) == f) return static_cast<double>(f);
  char buf[32];
  for (int digits = 1; digits < 9; ++digits) {
    const auto res = std::to_chars(buf, buf + sizeof buf - 1, static_cast<double>(f),
                                   std::chars_format::general, digits);
    *res.ptr = '\0';
    const double d = std::strtod(buf, nullptr);
    if (round(d) == bits) return d;
  }
  return static_cast<double>(f);  // exact; not reached: 5 digits always do for these types
}

// One element of a fixed-size `type` at p.
nlohmann::json element_json(DataType type, const char* p) {
  switch (type) {
    case DataType::BOOL:
      return *p != 0;
    case DataType::UINT8:
      return load<std::uint8_t>(p);
    case DataType::UINT16:
      return load<std::uint16_t>(p);
    case DataType::UINT32:
      return load<std::uint32_t>(p);
    case DataType::UINT64:
      return load<std::uint64_t>(p);  // an unsigned JSON number
    case DataType::INT8:
      return load<std::int8_t>(p);
    case DataType::INT16:
      return load<std::int16_t>(p);
    case DataType::INT32:
      return load<std::int32_t>(p);
    case DataType::INT64:
      return load<std::int64_t>(p);
    case DataType::FP16:
      return small_float_json(load<std::uint16_t>(p), fp16_bits_to_float, to_fp16_bits);
    case DataType::FP32:
      return float_json(load<float>(p));
    case DataType::FP64: {
      const double d = load<double>(p);
      return std::isfinite(d) ? nlohmann::json(d) : nlohmann::json(nullptr);
    }
    case DataType::BF16:
      return small_float_json(load<std::uint16_t>(p), bf16_bits_to_float, to_bf16_bits);
    case DataType::BYTES:
      return nullptr;  // variable size: tensor_to_kserve_json walks the layout
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

std::uint32_t read_length(std::string_view raw, std::size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data() + at);
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// Walks a BYTES layout for at most `limit` elements, calling on_element(view) for each; the
// reason it stopped early, or nullopt when it read `limit` elements. `at` ends past the last.
template <typename Fn>
std::optional<std::string> walk_bytes(std::string_view raw, std::size_t limit, std::size_t& at,
                                      Fn&& on_element) {
  at = 0;
  for (std::size_t i = 0; i < limit; ++i) {
    const std::size_t left = raw.size() - at;
    if (left < kLengthPrefix) {
      return "element " + std::to_string(i) + "'s 4-byte length is cut off (" +
             std::to_string(left) + " byte(s) left)";
    }
    const std::uint32_t length = read_length(raw, at);
    if (length > left - kLengthPrefix) {
      return "element " + std::to_string(i) + " says " + std::to_string(length) +
             " bytes, but only " + std::to_string(left - kLengthPrefix) + " follow";
    }
    on_element(raw.substr(at + kLengthPrefix, length));
    at += kLengthPrefix + length;
  }
  return std::nullopt;
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

std::uint16_t to_fp16_bits(double value) {
  return to_small_float(value, 10, 5);
}
std::uint16_t to_bf16_bits(double value) {
  return to_small_float(value, 7, 8);
}

float fp16_bits_to_float(std::uint16_t bits) {
  const float sign = (bits & 0x8000u) ? -1.0f : 1.0f;
  const int exp = (bits >> 10) & 0x1f;
  const int fraction = bits & 0x3ff;
  if (exp == 0x1f) {
    return fraction ? std::numeric_limits<float>::quiet_NaN()
                    : sign * std::numeric_limits<float>::infinity();
  }
  if (exp == 0) return sign * std::ldexp(static_cast<float>(fraction), -24);
  return sign * std::ldexp(static_cast<float>(fraction + 1024), exp - 25);
}

float bf16_bits_to_float(std::uint16_t bits) {
  const std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
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

std::optional<std::string> check_raw_tensor(DataType type, std::size_t count,
                                            std::string_view bytes) {
  const std::size_t size = element_size(type);
  if (size != 0) {
    if (count > std::numeric_limits<std::size_t>::max() / size) return "the shape is too large";
    if (bytes.size() == count * size) return std::nullopt;
    return "holds " + std::to_string(bytes.size()) + " bytes, the shape needs " +
           std::to_string(count * size);
  }
  std::size_t end = 0;
  if (auto why = walk_bytes(bytes, count, end, [](std::string_view) {})) return why;
  if (end == bytes.size()) return std::nullopt;
  return std::to_string(bytes.size() - end) + " byte(s) follow the " + std::to_string(count) +
         " element(s) the shape holds";
}

std::optional<std::vector<std::string_view>> bytes_elements(std::string_view raw) {
  std::vector<std::string_view> elements;
  std::size_t end = 0;
  // Each element takes at least its length prefix, so there are at most size / 4 of them.
  // The walk stops at the first fault; only a layout that ends exactly at its end is whole.
  walk_bytes(raw, raw.size() / kLengthPrefix, end,
             [&](std::string_view e) { elements.push_back(e); });
  if (end != raw.size()) return std::nullopt;
  return elements;
}

bool append_bytes_element(std::string& raw, std::string_view element) {
  if (element.size() > std::numeric_limits<std::uint32_t>::max()) return false;
  const auto length = static_cast<std::uint32_t>(element.size());
  const char prefix[kLengthPrefix] = {
      static_cast<char>(length & 0xff), static_cast<char>((length >> 8) & 0xff),
      static_cast<char>((length >> 16) & 0xff), static_cast<char>((length >> 24) & 0xff)};
  raw.append(prefix, kLengthPrefix);
  raw.append(element);
  return true;
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
  blob.resize(next_tensor_offset(blob.size()), '\0');
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
    const auto* numbers = json_numbers(in["data"]);
    flat.clear();
    if (!numbers) flatten(in["data"], flat);
    const std::size_t n = numbers ? numbers->size() / sizeof(JsonNumber) : flat.size();
    if (n != *count) {
      return bad(meta->name, "shape holds " + std::to_string(*count) + " elements but data has " +
                                 std::to_string(n));
    }
    std::size_t bad_element = 0;
    const auto bytes =
        numbers
            ? pack_data(
                  meta->datatype, n,
                  [numbers](std::size_t i) {
                    NumberView v;
                    std::memcpy(&v.n, numbers->data() + i * sizeof(JsonNumber), sizeof(JsonNumber));
                    return v;
                  },
                  bad_element)
            : pack_data(
                  meta->datatype, n,
                  [&flat](std::size_t i) -> const nlohmann::json& { return *flat[i]; },
                  bad_element);
    if (!bytes) {
      return bad(meta->name, "element " + std::to_string(bad_element) + " is not a valid " +
                                 std::string(to_string(meta->datatype)));
    }
    metas.push_back(append_tensor(blob, meta->name, meta->datatype, meta->shape, *bytes));
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
    if (!count) return bad(meta->name, "shape is too large");
    if (meta->offset > blob.size() || meta->nbytes > blob.size() - meta->offset) {
      return bad(meta->name, "lies outside the payload");
    }
    if (auto why =
            check_raw_tensor(meta->datatype, *count, blob.substr(meta->offset, meta->nbytes))) {
      return bad(meta->name, *why);
    }
    metas.push_back(std::move(*meta));
  }
  return metas;
}

nlohmann::json tensor_to_kserve_json(const TensorMeta& m, std::string_view blob) {
  nlohmann::json data = nlohmann::json::array();
  auto& arr = data.get_ref<nlohmann::json::array_t&>();
  const std::size_t offset = std::min(m.offset, blob.size());
  const std::string_view raw = blob.substr(offset, std::min(m.nbytes, blob.size() - offset));
  const std::size_t size = element_size(m.datatype);
  if (size == 0) {
    std::size_t end = 0;
    walk_bytes(raw, raw.size() / kLengthPrefix, end,
               [&](std::string_view e) { arr.push_back(sanitize_utf8(e)); });
  } else {
    arr.reserve(raw.size() / size);
    for (std::size_t at = 0; raw.size() - at >= size; at += size) {
      arr.push_back(element_json(m.datatype, raw.data() + at));
    }
  }
  return {{"name", m.name},
          {"datatype", to_string(m.datatype)},
          {"shape", m.shape},
          {"data", std::move(data)}};
}

}  // namespace respawn
