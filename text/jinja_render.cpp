// The Jinja renderer: walks the parsed tree with Python jinja2's semantics (scopes, Undefined,
// loops, macros, filters, tests, str/dict methods) and transformers' globals.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>
#include <unordered_map>

#include "jinja_ast.hpp"
#include "respawn/jinja.hpp"

namespace respawn {

std::string_view to_string(TemplateError::Kind kind) {
  switch (kind) {
    case TemplateError::Kind::syntax:
      return "syntax";
    case TemplateError::Kind::unsupported:
      return "unsupported";
    case TemplateError::Kind::raised:
      return "raised";
    case TemplateError::Kind::render:
      return "render";
  }
  return "render";
}

namespace jinja {
namespace {

[[noreturn]] void unsupported_at_render(const std::string& what) {
  throw JinjaError(TemplateError::Kind::unsupported, "unsupported construct: " + what);
}

[[noreturn]] void undefined_error(const Value& v) {
  fail(v.s.empty() ? std::string("value is undefined") : v.s);
}

std::string undefined_name_message(const std::string& name) {
  return "'" + name + "' is undefined";
}

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;

  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { normal, break_, continue_ };

std::vector<Value> iterate(const Value& v) {
  switch (v.type) {
    case Value::Type::list:
      if (v.list->is_generator()) {
        if (!v.list->deferred_error.empty()) fail(v.list->deferred_error);
        // A generator runs once: iterated again, it gives nothing.
        if (v.list->consumed == 1)
          unsupported_at_render("iterating a generator after part of it was used");
        if (v.list->consumed == 2) return {};
        v.list->consumed = 2;
      }
      return v.list->items;
    case Value::Type::dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict->items.size());
      for (const auto& kv : v.dict->items) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Type::string: {
      auto offsets = code_point_offsets(v.s);
      std::vector<Value> chars;
      chars.reserve(offsets.size() - 1);
      for (std::size_t k = 0; k + 1 < offsets.size(); ++k)
        chars.push_back(Value::string(v.s.substr(offsets[k], offsets[k + 1] - offsets[k])));
      return chars;
    }
    case Value::Type::undefined:
      return {};
    default:
      fail("'" + v.type_name() + "' object is not iterable");
  }
}

int64_t length_of(const Value& v) {
  switch (v.type) {
    case Value::Type::list:
      if (v.list->is_generator()) fail("object of type 'generator' has no len()");
      return static_cast<int64_t>(v.list->items.size());
    case Value::Type::dict:
      return static_cast<int64_t>(v.dict->items.size());
    case Value::Type::string:
      return static_cast<int64_t>(code_point_offsets(v.s).size() - 1);
    case Value::Type::undefined:
      return 0;
    default:
      fail("object of type '" + v.type_name() + "' has no len()");
  }
}

// Python's slice.indices
void slice_indices(int64_t length, const Value& start, const Value& stop, const Value& step,
                   int64_t* out_start, int64_t* out_stop, int64_t* out_step) {
  auto as_index = [](const Value& v) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_int()) fail("slice indices must be integers or None");
    return v.as_int();
  };
  int64_t st = as_index(step).value_or(1);
  if (st == 0) fail("slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> x, int64_t def) {
    if (!x) return def;
    int64_t v = *x;
    if (v < 0) {
      v += length;
      if (v < 0) v = st < 0 ? -1 : 0;
    } else if (v >= length) {
      v = st < 0 ? length - 1 : length;
    }
    return v;
  };
  *out_step = st;
  *out_start = clamp(as_index(start), st < 0 ? length - 1 : 0);
  *out_stop = clamp(as_index(stop), st < 0 ? -1 : length);
}

std::vector<std::string> python_split(const std::string& s, const std::optional<std::string>& sep,
                                      int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail("empty separator");
    std::size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      std::size_t k = s.find(*sep, pos);
      if (k == std::string::npos) break;
      out.push_back(s.substr(pos, k - pos));
      pos = k + sep->size();
    }
    out.push_back(s.substr(pos));
    return out;
  }
  std::size_t pos = 0, len = 0;
  auto skip = [&] {
    while (pos < s.size() && is_python_space(s, pos, &len)) pos += len;
  };
  skip();
  while (pos < s.size()) {
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      out.push_back(python_strip(s.substr(pos), false, true, std::nullopt));
      return out;
    }
    std::size_t start = pos;
    while (pos < s.size() && !is_python_space(s, pos, &len)) pos += len;
    out.push_back(s.substr(start, pos - start));
    skip();
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` between every code point (and at both ends).
    auto offsets = code_point_offsets(s);
    int64_t done = 0;
    for (std::size_t k = 0; k + 1 < offsets.size(); ++k) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out.append(s, offsets[k], offsets[k + 1] - offsets[k]);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  std::size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    std::size_t k = s.find(from, pos);
    if (k == std::string::npos) break;
    out.append(s, pos, k - pos);
    out += to;
    pos = k + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

bool is_cased_cp_string(const std::string& c) {
  return python_upper(c) != c || python_lower(c) != c;
}

std::string python_title(const std::string& s) {
  auto offsets = code_point_offsets(s);
  std::string out;
  bool prev_cased = false;
  for (std::size_t k = 0; k + 1 < offsets.size(); ++k) {
    std::string c = s.substr(offsets[k], offsets[k + 1] - offsets[k]);
    bool cased = is_cased_cp_string(c);
    out += cased ? (prev_cased ? python_lower(c) : python_upper(c)) : c;
    prev_cased = cased;
  }
  return out;
}

std::string python_capitalize(const std::string& s) {
  auto offsets = code_point_offsets(s);
  if (offsets.size() < 2) return s;
  return python_upper(s.substr(0, offsets[1])) + python_lower(s.substr(offsets[1]));
}

// jinja2's title filter: words start after white space, -, (, {, [ or <.
std::string jinja_title(const std::string& s) {
  auto offsets = code_point_offsets(s);
  std::string out;
  bool word_start = true;
  for (std::size_t k = 0; k + 1 < offsets.size(); ++k) {
    std::string c = s.substr(offsets[k], offsets[k + 1] - offsets[k]);
    std::size_t len;
    bool sep =
        is_python_space(c, 0, &len) || c == "-" || c == "(" || c == "{" || c == "[" || c == "<";
    if (sep) {
      out += c;
      word_start = true;
    } else {
      out += word_start ? python_upper(c) : python_lower(c);
      word_start = false;
    }
  }
  return out;
}

// Arguments of a filter, method or global: positional, then by name.
class Args {
 public:
  Args(std::vector<Value>& args, Kwargs& kwargs, std::string where)
      : args_(args), kwargs_(kwargs), where_(std::move(where)) {}

  // The parameter at `index` or named `name`; nullopt when not given.
  std::optional<Value> get(std::size_t index, const char* name) {
    used_ = std::max(used_, index + 1);
    names_.push_back(name);
    if (index < args_.size()) return args_[index];
    for (auto& [k, v] : kwargs_)
      if (k == name) return v;
    return std::nullopt;
  }
  Value get_or(std::size_t index, const char* name, Value def) {
    auto v = get(index, name);
    return v ? *v : std::move(def);
  }
  // Checks there is nothing left over (call after the gets).
  void done() {
    if (args_.size() > used_) fail(where_ + "() got too many positional arguments");
    for (auto& [k, v] : kwargs_)
      if (std::find(names_.begin(), names_.end(), k) == names_.end())
        fail(where_ + "() got an unexpected keyword argument '" + k + "'");
  }
  std::size_t positional() const { return args_.size(); }
  std::vector<Value>& rest() { return args_; }

 private:
  std::vector<Value>& args_;
  Kwargs& kwargs_;
  std::string where_;
  std::size_t used_ = 0;
  std::vector<std::string> names_;
};

std::string need_string(const Value& v, const std::string& what) {
  if (!v.is_string()) fail(what + " must be str, not " + v.type_name());
  return v.s;
}

class Renderer {
 public:
  Renderer(const RenderOptions& options) : options_(options) {}

  void render(const Node& root, ScopePtr scope, std::string& out) {
    exec_body(root.bodies[0], scope, out);
  }

  ScopePtr make_globals(const nlohmann::ordered_json& variables) {
    auto scope = std::make_shared<Scope>();
    scope->vars["raise_exception"] = Value::function("raise_exception", [](auto& a, auto& kw) {
      Args args(a, kw, "raise_exception");
      Value msg = args.get_or(0, "message", Value::string(""));
      args.done();
      throw JinjaError(TemplateError::Kind::raised, msg.str());
      return Value::none();
    });
    scope->vars["strftime_now"] = Value::function("strftime_now", [this](auto& a, auto& kw) {
      Args args(a, kw, "strftime_now");
      auto fmt = args.get(0, "format");
      args.done();
      if (!fmt) fail("strftime_now() missing its format argument");
      return Value::string(strftime_now(need_string(*fmt, "strftime_now format")));
    });
    scope->vars["namespace"] = Value::function("namespace", [](auto& a, auto& kw) {
      Value v;
      v.type = Value::Type::ns;
      v.ns = std::make_shared<Dict>();
      for (auto& p : a) {
        if (!p.is_dict()) fail("namespace() takes a dict or keyword arguments");
        for (auto& [k, e] : p.dict->items) v.ns->set(k, e);
      }
      for (auto& [k, e] : kw) v.ns->set(k, e);
      return v;
    });
    scope->vars["dict"] = Value::function("dict", [](auto& a, auto& kw) {
      Dict d;
      for (auto& p : a) {
        if (!p.is_dict()) unsupported_at_render("dict() of something other than a dict");
        for (auto& [k, e] : p.dict->items) d.set(k, e);
      }
      for (auto& [k, e] : kw) d.set(k, e);
      return Value::make_dict(std::move(d));
    });
    scope->vars["range"] = Value::function("range", [](auto& a, auto& kw) {
      if (!kw.empty()) fail("range() takes no keyword arguments");
      for (auto& v : a)
        if (!v.is_int()) fail("range() arguments must be integers");
      int64_t start = 0, stop = 0, step = 1;
      if (a.size() == 1) {
        stop = a[0].as_int();
      } else if (a.size() == 2 || a.size() == 3) {
        start = a[0].as_int();
        stop = a[1].as_int();
        if (a.size() == 3) step = a[2].as_int();
      } else {
        fail("range expected 1 to 3 arguments");
      }
      if (step == 0) fail("range() arg 3 must not be zero");
      std::vector<Value> items;
      for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
        if (items.size() >= 100000) fail("range too big (the sandbox's MAX_RANGE is 100000)");
        items.push_back(Value::integer(k));
      }
      return Value::make_seq(std::move(items), List::Origin::range);
    });
    for (const char* name : {"lipsum", "cycler", "joiner"}) {
      std::string n = name;
      scope->vars[n] = Value::function(
          n, [n](auto&, auto&) -> Value { unsupported_at_render("the global " + n + "()"); });
    }
    auto top = std::make_shared<Scope>();
    top->parent = scope;
    if (!variables.is_object()) fail("template variables must be a JSON object");
    for (const auto& [k, v] : variables.items()) top->vars[k] = Value::from_json(v);
    return top;
  }

 private:
  std::string strftime_now(const std::string& fmt) {
    std::tm tm{};
    if (options_.now) {
      tm = *options_.now;
    } else {
      std::time_t t = std::time(nullptr);
      localtime_r(&t, &tm);
    }
    if (fmt.empty()) return "";
    std::vector<char> buf(256 + fmt.size() * 8);
    std::size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    if (n == 0) fail("strftime_now: the format gives nothing or too much");
    return std::string(buf.data(), n);
  }

  // ---- statements ----

  Flow exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
    for (const auto& node : body) {
      Flow f;
      try {
        f = exec(*node, scope, out);
      } catch (JinjaError& e) {
        if (e.line == 0) e.line = node->line;
        throw;
      }
      if (f != Flow::normal) return f;
    }
    return Flow::normal;
  }

  Flow exec(const Node& node, const ScopePtr& scope, std::string& out) {
    switch (node.kind) {
      case Node::Kind::body:
        return exec_body(node.bodies[0], scope, out);
      case Node::Kind::text:
        out += node.text;
        return Flow::normal;
      case Node::Kind::output: {
        Value v = eval(*node.exprs[0], scope);
        if (v.is_string()) {
          out += v.s;
        } else {
          out += v.str();
        }
        return Flow::normal;
      }
      case Node::Kind::if_:
        for (std::size_t k = 0; k < node.exprs.size(); ++k)
          if (eval(*node.exprs[k], scope).truthy()) return exec_body(node.bodies[k], scope, out);
        if (node.bodies.size() > node.exprs.size())
          return exec_body(node.bodies.back(), scope, out);
        return Flow::normal;
      case Node::Kind::for_:
        return exec_for(node, scope, out);
      case Node::Kind::set: {
        Value v = eval(*node.exprs[0], scope);
        if (!node.attr.empty()) {
          const Value* target = scope->find(node.targets[0]);
          if (!target || target->type != Value::Type::ns)
            fail("cannot assign attribute on non-namespace object");
          target->ns->set(node.attr, std::move(v));
        } else {
          assign(node.targets, std::move(v), *scope);
        }
        return Flow::normal;
      }
      case Node::Kind::set_block: {
        std::string text;
        exec_body(node.bodies[0], scope, text);
        scope->vars[node.targets[0]] = Value::string(std::move(text));
        return Flow::normal;
      }
      case Node::Kind::macro:
        scope->vars[node.text] = make_macro(node, scope);
        return Flow::normal;
      case Node::Kind::break_:
        return Flow::break_;
      case Node::Kind::continue_:
        return Flow::continue_;
      case Node::Kind::with: {
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        for (const auto& [name, expr] : node.params) inner->vars[name] = eval(*expr, scope);
        return exec_body(node.bodies[0], inner, out);
      }
      case Node::Kind::generation:
        return exec_body(node.bodies[0], scope, out);
    }
    return Flow::normal;
  }

  void assign(const std::vector<std::string>& targets, Value v, Scope& scope) {
    if (targets.size() == 1) {
      scope.vars[targets[0]] = std::move(v);
      return;
    }
    std::size_t want = targets.back().empty() ? 1 : targets.size();
    std::vector<Value> items = iterate(v);
    if (items.size() != want)
      fail(items.size() < want
               ? "not enough values to unpack (expected " + std::to_string(want) + ", got " +
                     std::to_string(items.size()) + ")"
               : "too many values to unpack (expected " + std::to_string(want) + ")");
    for (std::size_t k = 0; k < want; ++k) scope.vars[targets[k]] = std::move(items[k]);
  }

  Flow exec_for(const Node& node, const ScopePtr& scope, std::string& out) {
    Value iterable = eval(*node.exprs[0], scope);
    std::vector<Value> items = iterate(iterable);
    if (node.has_filter) {
      std::vector<Value> kept;
      for (auto& item : items) {
        auto probe = std::make_shared<Scope>();
        probe->parent = scope;
        assign(node.targets, item, *probe);
        if (eval(*node.exprs[1], probe).truthy()) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (node.bodies.size() > 1) return exec_body(node.bodies[1], scope, out);
      return Flow::normal;
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
      auto iter_scope = std::make_shared<Scope>();
      iter_scope->parent = scope;
      auto state = std::make_shared<LoopState>();
      state->index0 = k;
      state->length = n;
      if (k > 0) state->previtem = items[static_cast<std::size_t>(k - 1)];
      if (k + 1 < n) state->nextitem = items[static_cast<std::size_t>(k + 1)];
      Value loop;
      loop.type = Value::Type::loop;
      loop.loop = std::move(state);
      iter_scope->vars["loop"] = std::move(loop);
      assign(node.targets, items[static_cast<std::size_t>(k)], *iter_scope);
      Flow f = exec_body(node.bodies[0], iter_scope, out);
      if (f == Flow::break_) break;
    }
    return Flow::normal;
  }

  Value make_macro(const Node& node, const ScopePtr& def_scope) {
    const Node* macro = &node;
    std::weak_ptr<Scope> weak = def_scope;  // the macro lives in that scope: no cycle
    return Value::function(node.text, [this, macro, weak](auto& a, auto& kw) {
      // Python's stack has a bound (RecursionError); so has this one, instead of a crash.
      if (call_depth_ >= kMaxCallDepth) fail("maximum recursion depth exceeded");
      struct DepthGuard {
        int& depth;
        explicit DepthGuard(int& d) : depth(++d) {}
        ~DepthGuard() { --depth; }
      } guard(call_depth_);
      ScopePtr parent = weak.lock();
      if (!parent) fail("macro '" + macro->text + "' called after its scope ended");
      auto scope = std::make_shared<Scope>();
      scope->parent = parent;
      if (a.size() > macro->params.size())
        fail("macro '" + macro->text + "' takes not more than " +
             std::to_string(macro->params.size()) + " argument(s)");
      for (std::size_t k = 0; k < macro->params.size(); ++k) {
        const auto& [pname, def] = macro->params[k];
        const Value* given = k < a.size() ? &a[k] : nullptr;
        for (auto& [key, v] : kw)
          if (key == pname) given = &v;
        if (given) {
          scope->vars[pname] = *given;
        } else if (def) {
          scope->vars[pname] = eval(*def, scope);
        } else {
          scope->vars[pname] = Value::undefined(undefined_name_message(pname));
        }
      }
      for (auto& [key, v] : kw) {
        bool known = false;
        for (const auto& p : macro->params) known = known || p.first == key;
        if (!known) fail("macro '" + macro->text + "' takes no keyword argument '" + key + "'");
      }
      std::string text;
      exec_body(macro->bodies[0], scope, text);
      return Value::string(std::move(text));
    });
  }

  // ---- expressions ----

  Value eval(const Expr& e, const ScopePtr& scope) {
    switch (e.kind) {
      case Expr::Kind::literal:
        return e.value;
      case Expr::Kind::name: {
        const Value* v = scope->find(e.name);
        return v ? *v : Value::undefined(undefined_name_message(e.name));
      }
      case Expr::Kind::list: {
        std::vector<Value> items;
        items.reserve(e.args.size());
        for (const auto& a : e.args) items.push_back(eval(*a, scope));
        return Value::make_list(std::move(items), e.is_tuple);
      }
      case Expr::Kind::dict: {
        Dict d;
        for (const auto& [k, v] : e.dict_items) {
          Value key = eval(*k, scope);
          if (!key.is_string()) unsupported_at_render("a dict key that is not a string");
          d.set(key.s, eval(*v, scope));
        }
        return Value::make_dict(std::move(d));
      }
      case Expr::Kind::getattr:
        return get_attr(eval(*e.args[0], scope), e.name);
      case Expr::Kind::getitem:
        return get_item(eval(*e.args[0], scope), eval(*e.args[1], scope));
      case Expr::Kind::slice: {
        Value obj = eval(*e.args[0], scope);
        Value parts[3];
        for (int k = 0; k < 3; ++k)
          parts[k] = e.args[k + 1] ? eval(*e.args[k + 1], scope) : Value::none();
        return slice(obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::call:
        return call(e, scope);
      case Expr::Kind::filter:
        return filter(e, scope);
      case Expr::Kind::test: {
        bool r = test(e, scope);
        return Value::boolean(e.negated ? !r : r);
      }
      case Expr::Kind::neg:
      case Expr::Kind::pos: {
        Value v = eval(*e.args[0], scope);
        if (v.is_undefined()) undefined_error(v);
        if (!v.is_number())
          fail("bad operand type for unary " + std::string(e.kind == Expr::Kind::neg ? "-" : "+") +
               ": '" + v.type_name() + "'");
        if (e.kind == Expr::Kind::pos)
          return v.type == Value::Type::boolean ? Value::integer(v.as_int()) : v;
        if (v.type == Value::Type::floating) return Value::floating(-v.d);
        return Value::integer(-v.as_int());
      }
      case Expr::Kind::binary:
        return binary(e.name, eval(*e.args[0], scope), eval(*e.args[1], scope));
      case Expr::Kind::and_: {
        Value a = eval(*e.args[0], scope);
        return a.truthy() ? eval(*e.args[1], scope) : a;
      }
      case Expr::Kind::or_: {
        Value a = eval(*e.args[0], scope);
        return a.truthy() ? a : eval(*e.args[1], scope);
      }
      case Expr::Kind::not_:
        return Value::boolean(!eval(*e.args[0], scope).truthy());
      case Expr::Kind::cond:
        if (eval(*e.args[0], scope).truthy()) return eval(*e.args[1], scope);
        return e.args[2]
                   ? eval(*e.args[2], scope)
                   : Value::undefined(
                         "the if expression evaluated to false and no else section was defined.");
      case Expr::Kind::compare: {
        Value left = eval(*e.args[0], scope);
        for (std::size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.args[k + 1], scope);
          if (!compare_op(e.ops[k], left, right)) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
    }
    fail("unknown expression");
  }

  static bool contains(const Value& container, const Value& item) {
    switch (container.type) {
      case Value::Type::string:
        if (!item.is_string())
          fail("'in <string>' requires string as left operand, not " + item.type_name());
        return container.s.find(item.s) != std::string::npos;
      case Value::Type::list:
        if (!container.list->deferred_error.empty()) fail(container.list->deferred_error);
        if (container.list->is_generator() && container.list->consumed) {
          if (container.list->consumed == 1)
            unsupported_at_render("'in' on a generator after part of it was used");
          return false;
        }
        for (const auto& v : container.list->items) {
          if (equals(v, item)) {
            if (container.list->is_generator()) container.list->consumed = 1;
            return true;
          }
        }
        if (container.list->is_generator()) container.list->consumed = 2;
        return false;
      case Value::Type::dict:
        if (item.is_dict() || (item.is_list() && !item.list->tuple && !item.list->is_generator() &&
                               item.list->origin != List::Origin::range))
          fail("unhashable type: '" + item.type_name() + "'");
        return item.is_string() && container.dict->find(item.s) != nullptr;
      case Value::Type::undefined:
        return false;
      default:
        fail("argument of type '" + container.type_name() + "' is not iterable");
    }
  }

  static bool compare_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in") return contains(b, a);
    if (op == "notin") return !contains(b, a);
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    int c = compare(a, b);
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  }

  static Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") return Value::string(a.str() + b.str());
    if (op == "%" && a.is_string())
      unsupported_at_render("printf-style string formatting (str % x)");
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    int64_t r = 0;
    auto checked = [](bool overflow, int64_t value) {
      // Python's integers have no bound; a result beyond 64 bits is not silently wrapped.
      if (overflow) unsupported_at_render("an integer result beyond 64 bits");
      return Value::integer(value);
    };
    auto type_error = [&]() -> Value {
      fail("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" +
           b.type_name() + "'");
    };
    if (op == "+") {
      if (a.is_number() && b.is_number()) {
        if (a.type == Value::Type::floating || b.type == Value::Type::floating)
          return Value::floating(a.as_double() + b.as_double());
        {
          bool overflow = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
          return checked(overflow, r);
        }
      }
      if (a.is_string() && b.is_string()) return Value::string(a.s + b.s);
      if (a.is_string() || b.is_string()) {
        if (a.is_string()) fail("can only concatenate str (not \"" + b.type_name() + "\") to str");
        return type_error();
      }
      if (a.is_list() && b.is_list() && a.list->tuple == b.list->tuple &&
          a.list->origin == List::Origin::plain && b.list->origin == List::Origin::plain) {
        std::vector<Value> items = a.list->items;
        items.insert(items.end(), b.list->items.begin(), b.list->items.end());
        return Value::make_list(std::move(items), a.list->tuple);
      }
      return type_error();
    }
    if (op == "*") {
      if (a.is_number() && b.is_number()) {
        if (a.type == Value::Type::floating || b.type == Value::Type::floating)
          return Value::floating(a.as_double() * b.as_double());
        {
          bool overflow = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
          return checked(overflow, r);
        }
      }
      const Value* seq = a.is_int() ? &b : &a;
      const Value* count = a.is_int() ? &a : &b;
      if (!count->is_int()) return type_error();
      int64_t n = std::max<int64_t>(0, count->as_int());
      std::size_t unit = seq->is_string() ? seq->s.size()
                         : seq->is_list() ? seq->list->items.size()
                                          : 0;
      if (unit && static_cast<uint64_t>(n) > (std::size_t{1} << 28) / unit)
        fail("the result of * is too large");
      if (seq->is_string()) {
        std::string out;
        for (int64_t k = 0; k < n; ++k) out += seq->s;
        return Value::string(std::move(out));
      }
      if (seq->is_list() && seq->list->origin == List::Origin::plain) {
        std::vector<Value> items;
        for (int64_t k = 0; k < n; ++k)
          items.insert(items.end(), seq->list->items.begin(), seq->list->items.end());
        return Value::make_list(std::move(items), seq->list->tuple);
      }
      return type_error();
    }
    if (op == "%" && a.is_string())
      unsupported_at_render("printf-style string formatting (str % x)");
    if (!a.is_number() || !b.is_number()) return type_error();
    bool floats = a.type == Value::Type::floating || b.type == Value::Type::floating;
    if (op == "-") {
      if (floats) return Value::floating(a.as_double() - b.as_double());
      {
        bool overflow = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
        return checked(overflow, r);
      }
    }
    if (op == "/") {
      if (b.as_double() == 0) fail("division by zero");
      return Value::floating(a.as_double() / b.as_double());
    }
    if (op == "//" || op == "%") {
      if (floats) {
        double x = a.as_double(), y = b.as_double();
        if (y == 0) fail("float division by zero");
        double mod = std::fmod(x, y);
        if (mod != 0 && ((y < 0) != (mod < 0))) mod += y;
        if (op == "%") return Value::floating(mod);
        return Value::floating(
            std::floor((x - mod) / y + 0.5) == (x - mod) / y ? (x - mod) / y : std::floor(x / y));
      }
      int64_t x = a.as_int(), y = b.as_int();
      if (y == 0) fail("integer division or modulo by zero");
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value::integer(op == "//" ? q : r);
    }
    if (op == "**") {
      if (!floats && b.as_int() >= 0) {
        r = 1;
        for (int64_t k = 0; k < b.as_int(); ++k)
          if (__builtin_mul_overflow(r, a.as_int(), &r)) return checked(true, 0);
        return Value::integer(r);
      }
      return Value::floating(std::pow(a.as_double(), b.as_double()));
    }
    return type_error();
  }

  static bool is_dict_method(const std::string& name) {
    static const char* kMethods[] = {"items",  "keys", "values", "get",        "pop",     "popitem",
                                     "update", "copy", "clear",  "setdefault", "fromkeys"};
    for (const char* m : kMethods)
      if (name == m) return true;
    return false;
  }

  static Value get_attr(const Value& obj, const std::string& name) {
    switch (obj.type) {
      case Value::Type::undefined:
        undefined_error(obj);
      case Value::Type::dict: {
        if (is_dict_method(name))
          unsupported_at_render("dict method '" + name + "' used as a value (call it, or use ['" +
                                name + "'] for the key)");
        const Value* v = obj.dict->find(name);
        return v ? *v : Value::undefined("'dict object' has no attribute '" + name + "'");
      }
      case Value::Type::ns: {
        const Value* v = obj.ns->find(name);
        return v ? *v : Value::undefined("'Namespace object' has no attribute '" + name + "'");
      }
      case Value::Type::loop: {
        const LoopState& l = *obj.loop;
        if (name == "index") return Value::integer(l.index0 + 1);
        if (name == "index0") return Value::integer(l.index0);
        if (name == "revindex") return Value::integer(l.length - l.index0);
        if (name == "revindex0") return Value::integer(l.length - l.index0 - 1);
        if (name == "first") return Value::boolean(l.index0 == 0);
        if (name == "last") return Value::boolean(l.index0 + 1 == l.length);
        if (name == "length") return Value::integer(l.length);
        if (name == "depth") return Value::integer(1);
        if (name == "depth0") return Value::integer(0);
        if (name == "previtem")
          return l.index0 > 0 ? l.previtem : Value::undefined("there is no previous item");
        if (name == "nextitem")
          return l.index0 + 1 < l.length ? l.nextitem : Value::undefined("there is no next item");
        if (name == "cycle" || name == "changed")
          unsupported_at_render("loop." + name + " used as a value");
        return Value::undefined("'LoopContext object' has no attribute '" + name + "'");
      }
      case Value::Type::string:
      case Value::Type::list: {
        static const char* kStr[] = {"strip",    "lstrip", "rstrip",     "split", "startswith",
                                     "endswith", "upper",  "lower",      "title", "capitalize",
                                     "replace",  "find",   "join",       "count", "index",
                                     "append",   "format", "splitlines", "rsplit"};
        for (const char* m : kStr)
          if (name == m) unsupported_at_render("method '" + name + "' used as a value");
        return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
      }
      default:
        return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
    }
  }

  static Value get_item(const Value& obj, const Value& key) {
    switch (obj.type) {
      case Value::Type::undefined:
        undefined_error(obj);
      case Value::Type::dict: {
        if (!key.is_string())
          return Value::undefined("'dict object' has no attribute " + key.repr());
        const Value* v = obj.dict->find(key.s);
        return v ? *v : Value::undefined("'dict object' has no attribute '" + key.s + "'");
      }
      case Value::Type::ns:
      case Value::Type::loop:
        if (!key.is_string()) return Value::undefined("no such item");
        return get_attr(obj, key.s);
      case Value::Type::list: {
        // jinja2's getitem turns Python's TypeError into an undefined value
        if (obj.list->origin != List::Origin::plain && obj.list->origin != List::Origin::range)
          return Value::undefined(std::string("'") + obj.list->origin_name() +
                                  "' object is not subscriptable");
        if (!key.is_int()) return Value::undefined("list indices must be integers");
        int64_t n = static_cast<int64_t>(obj.list->items.size());
        int64_t k = key.as_int();
        if (k < 0) k += n;
        if (k < 0 || k >= n) return Value::undefined("list object has no element " + key.str());
        return obj.list->items[static_cast<std::size_t>(k)];
      }
      case Value::Type::string: {
        if (!key.is_int()) return Value::undefined("string indices must be integers");
        auto offsets = code_point_offsets(obj.s);
        int64_t n = static_cast<int64_t>(offsets.size()) - 1;
        int64_t k = key.as_int();
        if (k < 0) k += n;
        if (k < 0 || k >= n) return Value::undefined("string index out of range");
        auto uk = static_cast<std::size_t>(k);
        return Value::string(obj.s.substr(offsets[uk], offsets[uk + 1] - offsets[uk]));
      }
      default:
        return Value::undefined("'" + obj.type_name() + " object' has no attribute " + key.repr());
    }
  }

  // x[a:b:c]: jinja2 slices with Python directly (not through getitem), so what Python cannot
  // slice is an error, not an undefined value.
  static Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
    if (obj.is_undefined()) undefined_error(obj);
    int64_t b, e, st;
    auto indices = [&](int64_t length) -> void {
      for (const Value* v : {&start, &stop, &step})
        if (!v->is_none() && !v->is_int())
          fail("slice indices must be integers or None or have an __index__ method");
      if (step.is_int() && step.as_int() == 0) fail("slice step cannot be zero");  // ValueError
      slice_indices(length, start, stop, step, &b, &e, &st);
    };
    if (obj.is_list()) {
      if (obj.list->origin != List::Origin::plain && obj.list->origin != List::Origin::range)
        fail(std::string("'") + obj.list->origin_name() + "' object is not subscriptable");
      const auto& items = obj.list->items;
      indices(static_cast<int64_t>(items.size()));
      std::vector<Value> out;
      for (int64_t k = b; st > 0 ? k < e : k > e; k += st)
        out.push_back(items[static_cast<std::size_t>(k)]);
      if (obj.list->origin == List::Origin::range)
        return Value::make_seq(std::move(out), List::Origin::range);
      return Value::make_list(std::move(out), obj.list->tuple);
    }
    if (obj.is_string()) {
      auto offsets = code_point_offsets(obj.s);
      indices(static_cast<int64_t>(offsets.size()) - 1);
      std::string out;
      if (st == 1) {
        if (e > b)
          out = obj.s.substr(
              offsets[static_cast<std::size_t>(b)],
              offsets[static_cast<std::size_t>(e)] - offsets[static_cast<std::size_t>(b)]);
      } else {
        for (int64_t k = b; st > 0 ? k < e : k > e; k += st) {
          auto uk = static_cast<std::size_t>(k);
          out.append(obj.s, offsets[uk], offsets[uk + 1] - offsets[uk]);
        }
      }
      return Value::string(std::move(out));
    }
    if (obj.is_dict()) fail("unhashable type: 'slice'");
    fail("'" + obj.type_name() + "' object is not subscriptable");
  }

  Value call(const Expr& e, const ScopePtr& scope) {
    std::vector<Value> args;
    Kwargs kwargs;
    for (std::size_t k = 1; k < e.args.size(); ++k) args.push_back(eval(*e.args[k], scope));
    for (const auto& [name, x] : e.kwargs) kwargs.emplace_back(name, eval(*x, scope));
    const Expr& callee = *e.args[0];
    if (callee.kind == Expr::Kind::getattr) {
      Value obj = eval(*callee.args[0], scope);
      if (obj.type != Value::Type::ns &&
          !(obj.is_dict() && !is_dict_method(callee.name) && obj.dict->find(callee.name)))
        return call_method(obj, callee.name, args, kwargs);
      Value fn = get_attr(obj, callee.name);
      return call_value(fn, args, kwargs);
    }
    Value fn = eval(callee, scope);
    return call_value(fn, args, kwargs);
  }

  static Value call_value(const Value& fn, std::vector<Value>& args, Kwargs& kwargs) {
    if (fn.is_undefined()) undefined_error(fn);
    if (fn.type != Value::Type::function) fail("'" + fn.type_name() + "' object is not callable");
    return (*fn.fn)(args, kwargs);
  }

  Value call_method(const Value& obj, const std::string& name, std::vector<Value>& a, Kwargs& kw) {
    if (obj.is_undefined()) undefined_error(obj);
    Args args(a, kw, name);
    auto opt_str = [&](std::size_t i, const char* n) -> std::optional<std::string> {
      auto v = args.get(i, n);
      if (!v || v->is_none()) return std::nullopt;
      return need_string(*v, n);
    };
    if (obj.is_string()) {
      const std::string& s = obj.s;
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        auto chars = opt_str(0, "chars");
        args.done();
        return Value::string(python_strip(s, name != "rstrip", name != "lstrip", chars));
      }
      if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
        args.done();
        if (name == "upper") return Value::string(python_upper(s));
        if (name == "lower") return Value::string(python_lower(s));
        if (name == "title") return Value::string(python_title(s));
        return Value::string(python_capitalize(s));
      }
      if (name == "startswith" || name == "endswith") {
        auto v = args.get(0, "prefix");
        args.done();
        if (!v) fail(name + "() takes at least 1 argument");
        std::vector<Value> options =
            v->is_list() && v->list->tuple ? v->list->items : std::vector<Value>{*v};
        for (const auto& o : options) {
          const std::string p = need_string(o, name + " argument");
          bool hit = name == "startswith" ? s.compare(0, p.size(), p) == 0
                                          : (s.size() >= p.size() &&
                                             s.compare(s.size() - p.size(), p.size(), p) == 0);
          if (hit) return Value::boolean(true);
        }
        return Value::boolean(false);
      }
      if (name == "split") {
        auto sep = opt_str(0, "sep");
        Value maxsplit = args.get_or(1, "maxsplit", Value::integer(-1));
        args.done();
        if (!maxsplit.is_int()) fail("maxsplit must be an integer");
        std::vector<Value> out;
        for (auto& part : python_split(s, sep, maxsplit.as_int()))
          out.push_back(Value::string(std::move(part)));
        return Value::make_list(std::move(out));
      }
      if (name == "replace") {
        auto from = args.get(0, "old");
        auto to = args.get(1, "new");
        Value count = args.get_or(2, "count", Value::integer(-1));
        args.done();
        if (!from || !to) fail("replace() takes at least 2 arguments");
        return Value::string(replace_all(s, need_string(*from, "replace"),
                                         need_string(*to, "replace"), count.as_int()));
      }
      if (name == "find" || name == "count") {
        auto sub = args.get(0, "sub");
        args.done();
        if (!sub) fail(name + "() takes at least 1 argument");
        std::string needle = need_string(*sub, name);
        if (name == "find") {
          std::size_t k = s.find(needle);
          if (k == std::string::npos) return Value::integer(-1);
          return Value::integer(
              static_cast<int64_t>(code_point_offsets(s.substr(0, k)).size() - 1));
        }
        if (needle.empty())
          return Value::integer(static_cast<int64_t>(code_point_offsets(s).size()));
        int64_t n = 0;
        for (std::size_t k = s.find(needle); k != std::string::npos;
             k = s.find(needle, k + needle.size()))
          ++n;
        return Value::integer(n);
      }
      if (name == "join") {
        auto items = args.get(0, "iterable");
        args.done();
        if (!items) fail("join() takes exactly one argument");
        std::string out;
        bool first = true;
        for (const auto& v : iterate(*items)) {
          if (!first) out += s;
          first = false;
          out += need_string(v, "sequence item");
        }
        return Value::string(std::move(out));
      }
      if (name == "format") unsupported_at_render("str.format()");
      unsupported_at_render("the string method '" + name + "'");
    }
    if (obj.is_dict()) {
      const Dict& d = *obj.dict;
      if (name == "get") {
        auto key = args.get(0, "key");
        Value def = args.get_or(1, "default", Value::none());
        args.done();
        if (!key) fail("get expected at least 1 argument, got 0");
        if (!key->is_string()) return def;
        const Value* v = d.find(key->s);
        return v ? *v : def;
      }
      if (name == "items" || name == "keys" || name == "values") {
        args.done();
        std::vector<Value> out;
        out.reserve(d.items.size());
        for (const auto& [k, v] : d.items) {
          if (name == "items") {
            out.push_back(Value::make_list({Value::string(k), v}, true));
          } else {
            out.push_back(name == "keys" ? Value::string(k) : v);
          }
        }
        return Value::make_seq(std::move(out), name == "items"  ? List::Origin::dict_items
                                               : name == "keys" ? List::Origin::dict_keys
                                                                : List::Origin::dict_values);
      }
      if (name == "pop" || name == "popitem" || name == "update" || name == "clear" ||
          name == "setdefault")
        fail("access to the unsafe method dict." + name + " (the sandbox is immutable)");
      unsupported_at_render("the dict method '" + name + "'");
    }
    if (obj.type == Value::Type::loop) {
      if (name == "cycle") {
        if (a.empty()) fail("no items for cycling given");
        return a[static_cast<std::size_t>(obj.loop->index0) % a.size()];
      }
      unsupported_at_render("loop." + name + "()");
    }
    if (obj.is_list()) {
      static const char* kMutating[] = {"append", "extend", "insert", "pop",
                                        "remove", "clear",  "sort",   "reverse"};
      for (const char* m : kMutating)
        if (name == m)
          fail("access to the unsafe method list." + name + " (the sandbox is immutable)");
      if (name == "index" || name == "count") {
        auto x = args.get(0, "value");
        args.done();
        if (!x) fail(name + "() takes exactly one argument");
        int64_t n = 0;
        for (std::size_t k = 0; k < obj.list->items.size(); ++k) {
          if (!equals(obj.list->items[k], *x)) continue;
          if (name == "index") return Value::integer(static_cast<int64_t>(k));
          ++n;
        }
        if (name == "index") fail("value is not in list");
        return Value::integer(n);
      }
      unsupported_at_render("the list method '" + name + "'");
    }
    if (obj.is_none()) fail("'NoneType' object has no attribute '" + name + "'");
    fail("'" + obj.type_name() + "' object has no method '" + name + "'");
  }

  // ---- filters ----

  Value attribute_of(const Value& v, const Value& attribute) {
    // jinja2's make_attrgetter: "a.b" and integer parts
    if (attribute.is_int()) return get_item(v, attribute);
    std::string path = attribute.str();
    Value cur = v;
    std::size_t pos = 0;
    while (true) {
      std::size_t dot = path.find('.', pos);
      std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
      bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
      cur = digits ? get_item(cur, Value::integer(std::atoll(part.c_str())))
                   : get_item(cur, Value::string(part));
      if (dot == std::string::npos) return cur;
      pos = dot + 1;
    }
  }

  Value filter(const Expr& e, const ScopePtr& scope) {
    Value v = eval(*e.args[0], scope);
    std::vector<Value> a;
    Kwargs kw;
    for (std::size_t k = 1; k < e.args.size(); ++k) a.push_back(eval(*e.args[k], scope));
    for (const auto& [name, x] : e.kwargs) kw.emplace_back(name, eval(*x, scope));
    return apply_filter(e.name, v, a, kw);
  }

  // The filters that are generators in jinja2 run lazily there: an error in them shows only
  // when the result is used (iterated, measured), never when it is only tested for truth.
  Value apply_filter(const std::string& name, const Value& v, std::vector<Value>& a, Kwargs& kw) {
    static const std::set<std::string> kGenerators = {
        "select", "reject", "selectattr", "rejectattr", "map", "unique", "items"};
    if (!kGenerators.count(name)) return apply_filter_now(name, v, a, kw);
    try {
      return apply_filter_now(name, v, a, kw);
    } catch (const JinjaError& e) {
      if (e.kind != TemplateError::Kind::render) throw;
      Value g = Value::make_seq({}, List::Origin::generator);
      std::const_pointer_cast<List>(g.list)->deferred_error = e.what();
      return g;
    }
  }

  Value apply_filter_now(const std::string& name, const Value& v, std::vector<Value>& a,
                         Kwargs& kw) {
    Args args(a, kw, name);
    if (name == "tojson") {
      JsonOptions o;
      o.ensure_ascii = args.get_or(0, "ensure_ascii", Value::boolean(false)).truthy();
      Value indent = args.get_or(1, "indent", Value::none());
      Value separators = args.get_or(2, "separators", Value::none());
      o.sort_keys = args.get_or(3, "sort_keys", Value::boolean(false)).truthy();
      args.done();
      if (indent.is_int()) {
        o.indent =
            std::string(static_cast<std::size_t>(std::max<int64_t>(0, indent.as_int())), ' ');
      } else if (indent.is_string()) {
        o.indent = indent.s;
      } else if (!indent.is_none()) {
        fail("tojson indent must be an int, a str or None");
      }
      if (!separators.is_none()) {
        if (!separators.is_list() || separators.list->items.size() != 2 ||
            !separators.list->items[0].is_string() || !separators.list->items[1].is_string())
          fail("tojson separators must be a pair of strings");
        o.separators = std::make_pair(separators.list->items[0].s, separators.list->items[1].s);
      }
      return Value::string(to_json(v, o));
    }
    if (name == "trim") {
      Value chars = args.get_or(0, "chars", Value::none());
      args.done();
      std::optional<std::string> c;
      if (!chars.is_none()) c = chars.str();
      return Value::string(python_strip(v.str(), true, true, c));
    }
    if (name == "length" || name == "count") {
      args.done();
      return Value::integer(length_of(v));
    }
    if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
      args.done();
      std::string s = v.str();
      if (name == "upper") return Value::string(python_upper(s));
      if (name == "lower") return Value::string(python_lower(s));
      if (name == "capitalize") return Value::string(python_capitalize(s));
      return Value::string(jinja_title(s));
    }
    if (name == "default" || name == "d") {
      Value def = args.get_or(0, "default_value", Value::string(""));
      bool boolean = args.get_or(1, "boolean", Value::boolean(false)).truthy();
      args.done();
      if (v.is_undefined() || (boolean && !v.truthy())) return def;
      return v;
    }
    if (name == "join") {
      Value sep = args.get_or(0, "d", Value::string(""));
      auto attribute = args.get(1, "attribute");
      args.done();
      std::string out;
      bool first = true;
      for (const auto& item : iterate(v)) {
        if (!first) out += sep.str();
        first = false;
        out += (attribute ? attribute_of(item, *attribute) : item).str();
      }
      return Value::string(std::move(out));
    }
    if (name == "first" || name == "last") {
      args.done();
      if (name == "last" && !((v.is_list() && !v.list->is_generator()) || v.is_string() ||
                              v.is_dict() || v.is_undefined()))
        fail("'" + v.type_name() + "' object is not reversible");
      auto items = iterate(v);
      if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
      if (v.is_list() && v.list->is_generator()) v.list->consumed = items.size() > 1 ? 1 : 2;
      return name == "first" ? items.front() : items.back();
    }
    if (name == "items") {
      args.done();
      if (v.is_undefined()) return Value::make_seq({}, List::Origin::generator);
      if (!v.is_dict()) fail("Can only get item pairs from a mapping.");
      std::vector<Value> out;
      for (const auto& [k, x] : v.dict->items)
        out.push_back(Value::make_list({Value::string(k), x}, true));
      return Value::make_seq(std::move(out), List::Origin::generator);
    }
    if (name == "dictsort") {
      args.done();
      if (!v.is_dict()) fail("dictsort: a mapping is required");
      std::vector<std::pair<std::string, Value>> items = v.dict->items;
      std::stable_sort(items.begin(), items.end(), [](const auto& x, const auto& y) {
        return python_lower(x.first) < python_lower(y.first);
      });
      std::vector<Value> out;
      for (auto& [k, x] : items) out.push_back(Value::make_list({Value::string(k), x}, true));
      return Value::make_list(std::move(out));
    }
    if (name == "string") {
      args.done();
      return Value::string(v.str());
    }
    if (name == "safe") {
      args.done();
      return v;
    }
    if (name == "int") {
      Value def = args.get_or(0, "default", Value::integer(0));
      Value base = args.get_or(1, "base", Value::integer(10));
      args.done();
      if (v.is_undefined()) undefined_error(v);  // int(Undefined) raises
      if (v.is_int()) return Value::integer(v.as_int());
      if (v.type == Value::Type::floating)
        return Value::integer(static_cast<int64_t>(std::trunc(v.d)));
      if (v.is_string()) {
        std::string s = python_strip(v.s, true, true, std::nullopt);
        char* end = nullptr;
        errno = 0;
        long long x = std::strtoll(s.c_str(), &end, static_cast<int>(base.as_int()));
        if (!s.empty() && end && *end == '\0' && errno == 0) return Value::integer(x);
        double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end && *end == '\0' && std::isfinite(d))
          return Value::integer(static_cast<int64_t>(std::trunc(d)));
      }
      return def;
    }
    if (name == "float") {
      Value def = args.get_or(0, "default", Value::floating(0.0));
      args.done();
      if (v.is_undefined()) undefined_error(v);  // float(Undefined) raises
      if (v.is_number()) return Value::floating(v.as_double());
      if (v.is_string()) {
        std::string s = python_strip(v.s, true, true, std::nullopt);
        char* end = nullptr;
        double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end && *end == '\0') return Value::floating(d);
      }
      return def;
    }
    if (name == "abs") {
      args.done();
      if (v.type == Value::Type::floating) return Value::floating(std::fabs(v.d));
      if (v.is_int()) return Value::integer(std::llabs(v.as_int()));
      fail("bad operand type for abs(): '" + v.type_name() + "'");
    }
    if (name == "replace") {
      auto from = args.get(0, "old");
      auto to = args.get(1, "new");
      Value count = args.get_or(2, "count", Value::none());
      args.done();
      if (!from || !to) fail("replace filter needs old and new");
      return Value::string(
          replace_all(v.str(), from->str(), to->str(), count.is_none() ? -1 : count.as_int()));
    }
    if (name == "list") {
      args.done();
      return Value::make_list(iterate(v));
    }
    if (name == "reverse") {
      args.done();
      if (v.is_string()) {
        auto offsets = code_point_offsets(v.s);
        std::string out;
        for (std::size_t k = offsets.size() - 1; k > 0; --k)
          out.append(v.s, offsets[k - 1], offsets[k] - offsets[k - 1]);
        return Value::string(std::move(out));
      }
      // reversed(x) where Python can (Undefined has len and []), else Jinja makes a list
      bool reversible = (v.is_list() && !v.list->is_generator()) || v.is_undefined() || v.is_dict();
      auto items = iterate(v);
      std::reverse(items.begin(), items.end());
      if (reversible) return Value::make_seq(std::move(items), List::Origin::generator);
      return Value::make_list(std::move(items));
    }
    if (name == "unique") {
      args.done();
      std::vector<Value> out;
      for (auto& item : iterate(v)) {
        bool seen = false;
        for (const auto& o : out) {
          Value x = item, y = o;
          if (x.is_string() && y.is_string())
            seen = seen || python_lower(x.s) == python_lower(y.s);
          else
            seen = seen || equals(x, y);
        }
        if (!seen) out.push_back(std::move(item));
      }
      return Value::make_seq(std::move(out), List::Origin::generator);
    }
    if (name == "sort") {
      bool reverse = args.get_or(0, "reverse", Value::boolean(false)).truthy();
      bool case_sensitive = args.get_or(1, "case_sensitive", Value::boolean(false)).truthy();
      auto attribute = args.get(2, "attribute");
      args.done();
      auto items = iterate(v);
      auto key = [&](const Value& x) {
        Value k = attribute ? attribute_of(x, *attribute) : x;
        if (!case_sensitive && k.is_string()) k.s = python_lower(k.s);
        return k;
      };
      std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        int c = compare(key(x), key(y));
        return reverse ? c > 0 : c < 0;
      });
      return Value::make_list(std::move(items));
    }
    if (name == "sum" || name == "min" || name == "max") {
      if (name == "sum") {
        auto attribute = args.get(0, "attribute");
        Value start = args.get_or(1, "start", Value::integer(0));
        args.done();
        Value total = start;
        for (auto& item : iterate(v))
          total = binary("+", total, attribute ? attribute_of(item, *attribute) : item);
        return total;
      }
      args.done();
      auto items = iterate(v);
      if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
      Value best = items[0];
      for (const auto& item : items) {
        Value x = item, y = best;
        if (x.is_string()) x.s = python_lower(x.s);
        if (y.is_string()) y.s = python_lower(y.s);
        int c = compare(x, y);
        if (name == "min" ? c < 0 : c > 0) best = item;
      }
      return best;
    }
    if (name == "wordcount") {
      args.done();
      // jinja2 counts the matches of \w+; exact here for ASCII text only
      std::string text = v.str();
      int64_t words = 0;
      bool in_word = false;
      for (unsigned char c : text) {
        if (c >= 0x80) unsupported_at_render("wordcount of non-ASCII text");
        bool word = std::isalnum(c) || c == '_';
        if (word && !in_word) ++words;
        in_word = word;
      }
      return Value::integer(words);
    }
    if (name == "indent") {
      Value width = args.get_or(0, "width", Value::integer(4));
      bool first = args.get_or(1, "first", Value::boolean(false)).truthy();
      bool blank = args.get_or(2, "blank", Value::boolean(false)).truthy();
      args.done();
      std::string pad =
          width.is_string()
              ? width.s
              : std::string(static_cast<std::size_t>(std::max<int64_t>(0, width.as_int())), ' ');
      std::string s = v.str();
      std::vector<std::string> lines;
      std::size_t pos = 0;
      while (true) {
        std::size_t k = s.find('\n', pos);
        lines.push_back(s.substr(pos, k == std::string::npos ? std::string::npos : k - pos));
        if (k == std::string::npos) break;
        pos = k + 1;
      }
      std::string out;
      for (std::size_t k = 0; k < lines.size(); ++k) {
        if (k > 0) out += '\n';
        bool indent_it =
            k == 0 ? first : (blank || !python_strip(lines[k], true, true, std::nullopt).empty());
        if (indent_it) out += pad;
        out += lines[k];
      }
      return Value::string(std::move(out));
    }
    if (name == "map") {
      if (!v.truthy()) return Value::make_seq({}, List::Origin::generator);  // `if value:` first
      auto attribute = args.get(99, "attribute");
      if (attribute) {
        Value def = args.get_or(98, "default", Value::undefined());
        args.done();
        bool has_default = !def.is_undefined();
        std::vector<Value> out;
        for (auto& item : iterate(v)) {
          Value x = attribute_of(item, *attribute);
          out.push_back(x.is_undefined() && has_default ? def : x);
        }
        return Value::make_seq(std::move(out), List::Origin::generator);
      }
      if (a.empty()) fail("map requires a filter name or attribute=");
      std::string filter_name = need_string(a[0], "map filter name");
      static const char* kMappable[] = {
          "trim", "length",  "count",      "upper",   "lower", "tojson", "string",
          "int",  "float",   "capitalize", "title",   "first", "last",   "list",
          "abs",  "default", "d",          "replace", "join",  "safe",   "reverse"};
      bool ok = false;
      for (const char* f : kMappable) ok = ok || filter_name == f;
      if (!ok) unsupported_at_render("map with the filter '" + filter_name + "'");
      std::vector<Value> out;
      for (auto& item : iterate(v)) {
        std::vector<Value> rest(a.begin() + 1, a.end());
        Kwargs rest_kw = kw;
        out.push_back(apply_filter(filter_name, item, rest, rest_kw));
      }
      return Value::make_seq(std::move(out), List::Origin::generator);
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
      bool attr = name == "selectattr" || name == "rejectattr";
      bool keep_if = name == "select" || name == "selectattr";
      if (!kw.empty()) fail(name + "() takes no keyword arguments");
      std::size_t k = 0;
      Value attribute;
      if (attr) {
        if (a.empty()) fail(name + "() missing the attribute");
        attribute = a[k++];
      }
      std::string test_name;
      if (k < a.size()) test_name = need_string(a[k++], "test name");
      std::vector<Value> targs(a.begin() + static_cast<std::ptrdiff_t>(k), a.end());
      std::vector<Value> out;
      if (!v.truthy()) return Value::make_seq({}, List::Origin::generator);  // `if value:` first
      for (auto& item : iterate(v)) {
        Value x = attr ? attribute_of(item, attribute) : item;
        bool r = test_name.empty() ? x.truthy() : apply_test(test_name, x, targs);
        if (r == keep_if) out.push_back(item);
      }
      return Value::make_seq(std::move(out), List::Origin::generator);
    }
    unsupported_at_render("the '" + name + "' filter");
  }

  // ---- tests ----

  bool test(const Expr& e, const ScopePtr& scope) {
    Value v = eval(*e.args[0], scope);
    std::vector<Value> a;
    for (std::size_t k = 1; k < e.args.size(); ++k) a.push_back(eval(*e.args[k], scope));
    if (!e.kwargs.empty()) unsupported_at_render("keyword arguments to a test");
    return apply_test(e.name, v, a);
  }

  static bool apply_test(const std::string& name, const Value& v, const std::vector<Value>& a) {
    auto arg = [&](std::size_t k) -> const Value& {
      if (k >= a.size()) fail("the test '" + name + "' needs an argument");
      return a[k];
    };
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "boolean") return v.type == Value::Type::boolean;
    if (name == "true") return v.type == Value::Type::boolean && v.b;
    if (name == "false") return v.type == Value::Type::boolean && !v.b;
    if (name == "integer") return v.type == Value::Type::integer;
    if (name == "float") return v.type == Value::Type::floating;
    if (name == "number") return v.is_number();
    if (name == "string") return v.is_string();
    if (name == "mapping") return v.is_dict();
    if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
    if (name == "sequence")  // len() and []: not generators or dict views
      return (v.is_list() &&
              (v.list->origin == List::Origin::plain || v.list->origin == List::Origin::range)) ||
             v.is_dict() || v.is_string() || v.is_undefined();
    if (name == "callable") return v.type == Value::Type::function;
    if (name == "sameas") {
      const Value& o = arg(0);
      if (v.is_none() || v.type == Value::Type::boolean || o.is_none() ||
          o.type == Value::Type::boolean)
        return v.type == o.type && equals(v, o);
      unsupported_at_render("'sameas' on values other than None, True and False");
    }
    if (name == "odd" || name == "even") {  // value % 2 == 1 / == 0, floats included
      if (!v.is_number())
        fail("unsupported operand type(s) for %: '" + v.type_name() + "' and 'int'");
      Value mod = binary("%", v, Value::integer(2));
      return equals(mod, Value::integer(name == "odd" ? 1 : 0));
    }
    if (name == "divisibleby") {
      const Value& n = arg(0);
      if (!v.is_int() || !n.is_int() || n.as_int() == 0) fail("divisibleby needs nonzero integers");
      return v.as_int() % n.as_int() == 0;
    }
    if (name == "lower") return v.is_string() && python_lower(v.s) == v.s;
    if (name == "upper") return v.is_string() && python_upper(v.s) == v.s;
    if (name == "in") return contains(arg(0), v);
    if (name == "eq" || name == "equalto" || name == "==") return equals(v, arg(0));
    if (name == "ne" || name == "!=") return !equals(v, arg(0));
    if (name == "lt" || name == "lessthan" || name == "<") return compare_op("<", v, arg(0));
    if (name == "le" || name == "<=") return compare_op("<=", v, arg(0));
    if (name == "gt" || name == "greaterthan" || name == ">") return compare_op(">", v, arg(0));
    if (name == "ge" || name == ">=") return compare_op(">=", v, arg(0));
    unsupported_at_render("the '" + name + "' test");
  }

  static constexpr int kMaxCallDepth = 200;
  const RenderOptions& options_;
  int call_depth_ = 0;
};

}  // namespace

}  // namespace jinja

namespace {
TemplateError to_template_error(const jinja::JinjaError& e) {
  return TemplateError{e.kind, e.what(), e.line};
}
}  // namespace

Result<JinjaTemplate, TemplateError> JinjaTemplate::parse(std::string_view source) {
  try {
    JinjaTemplate t;
    t.root_ = jinja::parse_template(source);
    return t;
  } catch (const jinja::JinjaError& e) {
    return to_template_error(e);
  }
}

Result<std::string, TemplateError> JinjaTemplate::render(const nlohmann::ordered_json& variables,
                                                         const RenderOptions& options) const {
  if (!root_) return TemplateError{TemplateError::Kind::render, "render of an empty template", 0};
  try {
    jinja::Renderer renderer(options);
    auto scope = renderer.make_globals(variables);
    std::string out;
    renderer.render(*root_, scope, out);
    return out;
  } catch (const jinja::JinjaError& e) {
    return to_template_error(e);
  }
}

Result<std::string, TemplateError> apply_chat_template(const JinjaTemplate& chat_template,
                                                       const ChatTemplateInputs& inputs,
                                                       const RenderOptions& options) {
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  vars["messages"] = inputs.messages;
  vars["tools"] = inputs.tools;
  vars["documents"] = inputs.documents;
  vars["add_generation_prompt"] = inputs.add_generation_prompt;
  vars["bos_token"] = inputs.bos_token;
  vars["eos_token"] = inputs.eos_token;
  if (!inputs.extra.is_null()) {
    if (!inputs.extra.is_object())
      return TemplateError{TemplateError::Kind::render, "extra kwargs must be a JSON object", 0};
    for (const auto& [k, v] : inputs.extra.items()) {
      if (k == "messages" || k == "tools" || k == "documents" || k == "add_generation_prompt")
        return TemplateError{TemplateError::Kind::render,
                             "extra kwarg '" + k + "' repeats a named argument", 0};
      vars[k] = v;
    }
  }
  return chat_template.render(vars, options);
}

}  // namespace respawn
