// Values of the Jinja engine: Python's conversions, comparisons and transformers' tojson.
#include "jinja_value.hpp"

#include "respawn/utf8.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace respawn::jinja {

Value Value::make_list(std::vector<Value> items, bool tuple) {
  Value v = of(Type::list);
  auto l = std::make_shared<List>();
  l->items = std::move(items);
  l->tuple = tuple;
  v.list = std::move(l);
  return v;
}

Value Value::make_seq(std::vector<Value> items, SeqOrigin origin) {
  Value v = make_list(std::move(items));
  std::const_pointer_cast<List>(v.list)->origin = origin;
  return v;
}

const char* List::origin_name() const {
  switch (origin) {
    case Origin::plain:
      return tuple ? "tuple" : "list";
    case Origin::generator:
      return "generator";
    case Origin::dict_keys:
      return "dict_keys";
    case Origin::dict_values:
      return "dict_values";
    case Origin::dict_items:
      return "dict_items";
    case Origin::range:
      return "range";
  }
  return "list";
}

Value Value::make_dict(Dict dict) {
  Value v = of(Type::dict);
  v.dict = std::make_shared<const Dict>(std::move(dict));
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) fail("integer out of range: " + j.dump());
      return integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return floating(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return make_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      d.items.reserve(j.size());
      for (const auto& [k, e] : j.items()) d.items.emplace_back(k, from_json(e));
      return make_dict(std::move(d));
    }
    default:
      fail("unsupported JSON value (binary or discarded)");
  }
}

bool Value::truthy() const {
  switch (type) {
    case Type::undefined:
    case Type::none:
      return false;
    case Type::boolean:
      return b;
    case Type::integer:
      return i != 0;
    case Type::floating:
      return d != 0.0;
    case Type::string:
      return !s.empty();
    case Type::list:
      return list->is_generator() || !list->items.empty();  // a generator is always true
    case Type::dict:
      return !dict->items.empty();
    default:
      return true;
  }
}

std::string Value::type_name() const {
  switch (type) {
    case Type::undefined:
      return "Undefined";
    case Type::none:
      return "NoneType";
    case Type::boolean:
      return "bool";
    case Type::integer:
      return "int";
    case Type::floating:
      return "float";
    case Type::string:
      return "str";
    case Type::list:
      return list->origin_name();
    case Type::dict:
      return "dict";
    case Type::ns:
      return "Namespace";
    case Type::loop:
      return "LoopContext";
    case Type::function:
      return "function";
  }
  return "object";
}

std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  // The shortest %.*e that reads back as x, then Python's layout of it.
  char buf[64];
  for (int precision = 0; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  std::string sci = buf;
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  auto e_pos = sci.find('e');
  int exponent = std::atoi(sci.c_str() + e_pos + 1);
  std::string digits;
  for (std::size_t k = 0; k < e_pos; ++k)
    if (sci[k] != '.') digits += sci[k];
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int decpt = exponent + 1;
  std::string out = negative ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<std::size_t>(-decpt), '0') + digits;
    } else if (static_cast<std::size_t>(decpt) >= digits.size()) {
      out += digits + std::string(static_cast<std::size_t>(decpt) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<std::size_t>(decpt)) + "." +
             digits.substr(static_cast<std::size_t>(decpt));
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp;
  }
  return out;
}

namespace {

// Decodes the code point at s[pos] (lenient: a bad byte is one code point).
uint32_t decode(std::string_view s, std::size_t pos, std::size_t* len) {
  auto c = static_cast<unsigned char>(s[pos]);
  int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (pos + n > s.size()) n = 1;
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
  *len = static_cast<std::size_t>(n);
  return cp;
}

bool space_cp(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Simple case mapping for ASCII, Latin-1, Latin Extended-A (pairs), Greek and Cyrillic.
uint32_t to_upper_cp(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c >= 0x100 && c <= 0x17F && c != 0x178 && c != 0x131 && c != 0x138 && c != 0x149 &&
      c != 0x17F) {
    bool odd_lower = !((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E));
    if (odd_lower ? (c & 1) : !(c & 1)) return c - 1;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

uint32_t to_lower_cp(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c >= 0x100 && c <= 0x17F && c != 0x178 && c != 0x130 && c != 0x138 && c != 0x149 &&
      c != 0x17F) {
    bool odd_lower = !((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E));
    if (odd_lower ? !(c & 1) : (c & 1)) return c + 1;
    return c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

// Code points whose Python case mapping the tables above do not reproduce (other cased scripts,
// ß -> SS, final sigma, ligatures, ...): changing their case is refused, not guessed.
bool outside_case_tables(uint32_t c) {
  if (c < 0xDF) return false;
  if (c == 0xDF || c == 0x130 || c == 0x149 || c == 0x17F) return true;
  if (c < 0x180) return false;
  if (c >= 0x391 && c <= 0x3C9 && c != 0x3A2 && c != 0x3A3 && c != 0x3C2) return false;
  if (c >= 0x400 && c <= 0x45F) return false;
  static const uint32_t kCased[][2] = {
      {0x180, 0x2AF},   {0x345, 0x345},   {0x370, 0x3FF},   {0x460, 0x52F},    {0x531, 0x58F},
      {0x10A0, 0x10FF}, {0x13A0, 0x13FF}, {0x1C80, 0x1CBF}, {0x1D00, 0x1DBF},  {0x1E00, 0x1FFF},
      {0x2126, 0x2126}, {0x212A, 0x212B}, {0x2132, 0x2132}, {0x214E, 0x214E},  {0x2160, 0x2188},
      {0x24B6, 0x24E9}, {0x2C00, 0x2D2F}, {0xA640, 0xA69F}, {0xA720, 0xA7FF},  {0xAB30, 0xABBF},
      {0xFB00, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1E9FF}};
  for (const auto& r : kCased)
    if (c >= r[0] && c <= r[1]) return true;
  return false;
}

std::string map_case(std::string_view s, uint32_t (*f)(uint32_t)) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t pos = 0; pos < s.size();) {
    std::size_t len;
    uint32_t cp = decode(s, pos, &len);
    if (len == 1 && cp >= 0x80) {
      out += s[pos];  // a stray byte passes through
    } else {
      if (outside_case_tables(cp)) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "U+%04X", cp);
        throw JinjaError(TemplateError::Kind::unsupported,
                         std::string("unsupported construct: changing the case of ") + buf +
                             " (outside respawn's case tables)");
      }
      append_utf8(out, f(cp));
    }
    pos += len;
  }
  return out;
}

std::string repr_string(const std::string& s) {
  char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, quote);
  for (std::size_t pos = 0; pos < s.size();) {
    std::size_t len;
    uint32_t cp = decode(s, pos, &len);
    if (cp == '\\') {
      out += "\\\\";
    } else if (cp == static_cast<uint32_t>(quote)) {
      out += '\\';
      out += quote;
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", cp);
      out += buf;
    } else {
      out.append(s, pos, len);
    }
    pos += len;
  }
  out += quote;
  return out;
}

void json_string(const std::string& s, bool ensure_ascii, std::string& out) {
  out += '"';
  for (std::size_t pos = 0; pos < s.size();) {
    std::size_t len;
    uint32_t cp = decode(s, pos, &len);
    char buf[16];
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
          if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                          0xDC00 + (v & 0x3FF));
          } else {
            std::snprintf(buf, sizeof buf, "\\u%04x", cp);
          }
          out += buf;
        } else {
          out.append(s, pos, len);
        }
    }
    pos += len;
  }
  out += '"';
}

void json_dump(const Value& v, const JsonOptions& o, const std::string& item_sep,
               const std::string& key_sep, int depth, std::string& out) {
  auto newline = [&](int level) {
    if (!o.indent) return;
    out += '\n';
    for (int k = 0; k < level; ++k) out += *o.indent;
  };
  switch (v.type) {
    case Value::Type::none:
      out += "null";
      return;
    case Value::Type::boolean:
      out += v.b ? "true" : "false";
      return;
    case Value::Type::integer:
      out += std::to_string(v.i);
      return;
    case Value::Type::floating:
      if (std::isnan(v.d)) {
        out += "NaN";
      } else if (std::isinf(v.d)) {
        out += v.d > 0 ? "Infinity" : "-Infinity";
      } else {
        out += float_repr(v.d);
      }
      return;
    case Value::Type::string:
      json_string(v.s, o.ensure_ascii, out);
      return;
    case Value::Type::list: {
      if (v.list->origin != List::Origin::plain)
        fail(std::string("Object of type ") + v.list->origin_name() + " is not JSON serializable");
      if (v.list->items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const auto& e : v.list->items) {
        if (!first) out += item_sep;
        first = false;
        newline(depth + 1);
        json_dump(e, o, item_sep, key_sep, depth + 1, out);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Value::Type::dict:
    case Value::Type::ns: {
      const Dict& d = v.type == Value::Type::dict ? *v.dict : *v.ns;
      if (v.type == Value::Type::ns) fail("Object of type Namespace is not JSON serializable");
      if (d.items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : d.items) items.push_back(&kv);
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      bool first = true;
      for (const auto* kv : items) {
        if (!first) out += item_sep;
        first = false;
        newline(depth + 1);
        json_string(kv->first, o.ensure_ascii, out);
        out += key_sep;
        json_dump(kv->second, o, item_sep, key_sep, depth + 1, out);
      }
      newline(depth);
      out += '}';
      return;
    }
    default:
      fail("Object of type " + v.type_name() + " is not JSON serializable");
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonOptions& o) {
  std::string item_sep = o.indent ? "," : ", ";
  std::string key_sep = ": ";
  if (o.separators) {
    item_sep = o.separators->first;
    key_sep = o.separators->second;
  }
  std::string out;
  json_dump(v, o, item_sep, key_sep, 0, out);
  return out;
}

std::string Value::str() const {
  switch (type) {
    case Type::undefined:
      return "";
    case Type::string:
      return s;
    case Type::none:
      return "None";
    case Type::boolean:
      return b ? "True" : "False";
    case Type::integer:
      return std::to_string(i);
    case Type::floating:
      return float_repr(d);
    default:
      return repr();
  }
}

std::string Value::repr() const {
  switch (type) {
    case Type::string:
      return repr_string(s);
    case Type::undefined:
      return "Undefined";
    case Type::list: {
      if (list->origin == List::Origin::generator || list->origin == List::Origin::range)
        throw JinjaError(TemplateError::Kind::unsupported,
                         std::string("unsupported construct: printing a ") + list->origin_name() +
                             " (Python prints the object; add |list)");
      if (list->origin != List::Origin::plain) {
        List plain = *list;
        plain.origin = List::Origin::plain;
        Value v = make_list(std::move(plain.items));
        return std::string(list->origin_name()) + "(" + v.repr() + ")";
      }
      std::string out = list->tuple ? "(" : "[";
      for (std::size_t k = 0; k < list->items.size(); ++k) {
        if (k) out += ", ";
        out += list->items[k].repr();
      }
      if (list->tuple && list->items.size() == 1) out += ",";
      out += list->tuple ? ")" : "]";
      return out;
    }
    case Type::dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, e] : dict->items) {
        if (!first) out += ", ";
        first = false;
        out += repr_string(k) + ": " + e.repr();
      }
      return out + "}";
    }
    case Type::ns:
    case Type::loop:
    case Type::function:
      fail("cannot render a " + type_name() + " as text (its Python form is an object address)");
    default:
      return str();
  }
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.type == Value::Type::floating || b.type == Value::Type::floating)
      return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.type != b.type) return false;
  switch (a.type) {
    case Value::Type::undefined:
    case Value::Type::none:
      return true;
    case Value::Type::string:
      return a.s == b.s;
    case Value::Type::list: {
      if (a.list == b.list) return true;
      if (a.list->origin != List::Origin::plain || b.list->origin != List::Origin::plain)
        return false;  // generators and views compare by identity (or as sets: not here)
      if (a.list->tuple != b.list->tuple || a.list->items.size() != b.list->items.size())
        return false;
      for (std::size_t k = 0; k < a.list->items.size(); ++k)
        if (!equals(a.list->items[k], b.list->items[k])) return false;
      return true;
    }
    case Value::Type::dict: {
      if (a.dict == b.dict) return true;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* o = b.dict->find(k);
        if (!o || !equals(v, *o)) return false;
      }
      return true;
    }
    case Value::Type::ns:
      return a.ns == b.ns;
    case Value::Type::loop:
      return a.loop == b.loop;
    case Value::Type::function:
      return a.fn == b.fn;
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.type == Value::Type::floating || b.type == Value::Type::floating) {
      double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.s.compare(b.s);  // byte order of UTF-8 is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.list->tuple == b.list->tuple &&
      a.list->origin == List::Origin::plain && b.list->origin == List::Origin::plain) {
    const auto& x = a.list->items;
    const auto& y = b.list->items;
    for (std::size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (equals(x[k], y[k])) continue;
      return compare(x[k], y[k]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  fail("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() +
       "'");
}

std::vector<std::size_t> code_point_offsets(std::string_view s) {
  std::vector<std::size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (std::size_t pos = 0; pos < s.size();) {
    offsets.push_back(pos);
    std::size_t len;
    decode(s, pos, &len);
    pos += len;
  }
  offsets.push_back(s.size());
  return offsets;
}

bool is_python_space(std::string_view s, std::size_t pos, std::size_t* len) {
  uint32_t cp = decode(s, pos, len);
  return space_cp(cp);
}

std::string python_strip(std::string_view s, bool left, bool right,
                         const std::optional<std::string>& chars) {
  std::vector<uint32_t> set;
  if (chars) {
    for (std::size_t pos = 0; pos < chars->size();) {
      std::size_t len;
      set.push_back(decode(*chars, pos, &len));
      pos += len;
    }
  }
  auto strip_cp = [&](uint32_t cp) {
    return chars ? std::find(set.begin(), set.end(), cp) != set.end() : space_cp(cp);
  };
  auto offsets = code_point_offsets(s);
  std::size_t begin = 0, end = offsets.size() - 1;  // in code points
  std::size_t len;
  if (left)
    while (begin < end && strip_cp(decode(s, offsets[begin], &len))) ++begin;
  if (right)
    while (end > begin && strip_cp(decode(s, offsets[end - 1], &len))) --end;
  return std::string(s.substr(offsets[begin], offsets[end] - offsets[begin]));
}

std::string python_upper(std::string_view s) {
  return map_case(s, to_upper_cp);
}
std::string python_lower(std::string_view s) {
  return map_case(s, to_lower_cp);
}

}  // namespace respawn::jinja
