#pragma once
// The values a Jinja template computes with (internal to respawn_text): Python's None, bool,
// int, float, str, list/tuple, dict (insertion-ordered), jinja2's Undefined, a namespace(), the
// loop object, and callables (macros and globals), with Python's conversions (str, repr,
// truthiness, ==) and transformers' tojson. Lists and dicts are immutable and shared, so a copy
// is cheap; a namespace is shared and mutable. Thread-compatible: a Value is not shared across
// renders.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/jinja.hpp"

namespace respawn::jinja {

// Thrown while parsing or rendering; JinjaTemplate turns it into a TemplateError.
struct JinjaError : std::runtime_error {
  JinjaError(TemplateError::Kind k, const std::string& msg, int l = 0)
      : std::runtime_error(msg), kind(k), line(l) {}
  TemplateError::Kind kind;
  int line;
};

[[noreturn]] inline void fail(const std::string& message) {
  throw JinjaError(TemplateError::Kind::render, message);
}

struct Value;
struct List;
enum class SeqOrigin { plain, generator, dict_keys, dict_values, dict_items, range };
struct Dict;
struct LoopState;
using Kwargs = std::vector<std::pair<std::string, Value>>;
using NativeFn = std::function<Value(std::vector<Value>& args, Kwargs& kwargs)>;

struct Value {
  enum class Type {
    undefined,
    none,
    boolean,
    integer,
    floating,
    string,
    list,
    dict,
    ns,
    loop,
    function
  };
  Type type = Type::undefined;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string
      s;  // the string; for undefined, its name (for error messages); for function, its name
  std::shared_ptr<const List> list;
  std::shared_ptr<const Dict> dict;
  std::shared_ptr<Dict> ns;
  std::shared_ptr<const LoopState> loop;
  std::shared_ptr<const NativeFn> fn;

  static Value undefined(std::string name = {}) {
    Value v;
    v.s = std::move(name);
    return v;
  }
  static Value none() { return of(Type::none); }
  static Value boolean(bool x) {
    Value v = of(Type::boolean);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = of(Type::integer);
    v.i = x;
    return v;
  }
  static Value floating(double x) {
    Value v = of(Type::floating);
    v.d = x;
    return v;
  }
  static Value string(std::string x) {
    Value v = of(Type::string);
    v.s = std::move(x);
    return v;
  }
  static Value make_list(std::vector<Value> items, bool tuple = false);
  static Value make_seq(std::vector<Value> items, SeqOrigin origin);
  static Value make_dict(Dict dict);
  static Value function(std::string name, NativeFn fn) {
    Value v = of(Type::function);
    v.s = std::move(name);
    v.fn = std::make_shared<const NativeFn>(std::move(fn));
    return v;
  }
  static Value from_json(const nlohmann::ordered_json& j);

  bool is_undefined() const { return type == Type::undefined; }
  bool is_none() const { return type == Type::none; }
  bool is_string() const { return type == Type::string; }
  bool is_list() const { return type == Type::list; }
  bool is_dict() const { return type == Type::dict; }
  // bool is an int in Python
  bool is_int() const { return type == Type::integer || type == Type::boolean; }
  bool is_number() const { return is_int() || type == Type::floating; }
  int64_t as_int() const { return type == Type::boolean ? (b ? 1 : 0) : i; }
  double as_double() const { return type == Type::floating ? d : static_cast<double>(as_int()); }

  bool truthy() const;
  std::string str() const;   // Python str()
  std::string repr() const;  // Python repr()
  std::string type_name() const;

 private:
  static Value of(Type t) {
    Value v;
    v.type = t;
    return v;
  }
};

struct List {
  // What Python object the sequence stands for. Filters like select and map give generators
  // (always true, no len(), single use), dict.items()/keys()/values() give views, range() a
  // range; printing any of them shows an object in Python, so it is an error here.
  using Origin = SeqOrigin;
  std::vector<Value> items;
  bool tuple = false;
  Origin origin = Origin::plain;
  mutable int consumed = 0;    // generators: 0 fresh, 1 partly used, 2 used up
  std::string deferred_error;  // generators: the error jinja2 raises when this one is used

  bool is_generator() const { return origin == Origin::generator; }
  const char* origin_name() const;
};

struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const {
    for (const auto& [k, v] : items)
      if (k == key) return &v;
    return nullptr;
  }
  void set(const std::string& key, Value value) {
    for (auto& [k, v] : items)
      if (k == key) {
        v = std::move(value);
        return;
      }
    items.emplace_back(key, std::move(value));
  }
};

struct LoopState {
  int64_t index0 = 0;
  int64_t length = 0;
  Value previtem;
  Value nextitem;
};

bool equals(const Value& a, const Value& b);
// -1, 0, 1; throws a TypeError-like error where Python's < would.
int compare(const Value& a, const Value& b);

// Python's repr() of a float.
std::string float_repr(double x);

// transformers' tojson: json.dumps(x, ensure_ascii, indent, separators, sort_keys).
struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt = None; an int indent becomes that many spaces
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonOptions& options);

// UTF-8 helpers: strings index and measure in code points, as Python's str does.
std::vector<std::size_t> code_point_offsets(std::string_view s);  // start of each, plus size()
bool is_python_space(std::string_view s, std::size_t pos, std::size_t* len);
std::string python_strip(std::string_view s, bool left, bool right,
                         const std::optional<std::string>& chars);
std::string python_upper(std::string_view s);
std::string python_lower(std::string_view s);

}  // namespace respawn::jinja
