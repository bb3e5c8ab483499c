#pragma once
// The parsed form of a Jinja template (internal to respawn_text): expressions and statements as
// tagged structs the parser (jinja_parser.cpp) builds and the renderer (jinja_render.cpp) walks.
// Immutable once parsed; safe to share between threads.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja_value.hpp"

namespace respawn::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    literal,  // value
    name,     // name
    list,     // args (tuple: is_tuple)
    dict,     // kwargs-like pairs in dict_items
    getattr,  // args[0] . name
    getitem,  // args[0] [ args[1] ]
    slice,    // args[0] [ args[1] : args[2] : args[3] ] (null parts absent)
    call,     // args[0] ( args[1..] , kwargs )
    filter,   // args[0] | name ( args[1..], kwargs )
    test,     // args[0] is [not] name ( args[1..] )
    neg,      // - args[0]
    pos,      // + args[0]
    binary,   // args[0] name args[1]: + - * / // % ** ~
    and_,     // args[0] and args[1]
    or_,      // args[0] or args[1]
    not_,     // not args[0]
    cond,     // args[1] if args[0] else args[2] (args[2] null: undefined)
    compare,  // args[0] ops[0] args[1] ops[1] args[2] ...
  };
  Kind kind = Kind::literal;
  int line = 0;
  Value value;
  std::string name;
  bool negated = false;
  bool is_tuple = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::pair<ExprPtr, ExprPtr>> dict_items;
  std::vector<std::string> ops;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    body,       // bodies[0]
    text,       // text
    output,     // {{ exprs[0] }}
    if_,        // exprs[k] guards bodies[k]; one more body than exprs = else
    for_,       // targets in exprs[0] [if exprs[1]]: bodies[0], else bodies[1]
    set,        // targets (or targets[0].attr) = exprs[0]
    set_block,  // {% set targets[0] %}bodies[0]{% endset %}
    macro,      // {% macro text(params) %}bodies[0]
    break_,
    continue_,
    with,        // {% with params %}bodies[0]
    generation,  // transformers' {% generation %}bodies[0]: rendered as is
  };
  Kind kind = Kind::body;
  int line = 0;
  std::string text;
  std::string attr;
  std::vector<std::string> targets;
  std::vector<ExprPtr> exprs;
  std::vector<Body> bodies;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters, with assignments
  bool has_filter = false;                              // for: exprs[1] is its `if`
};

// Parses a template; throws JinjaError (syntax or unsupported).
std::unique_ptr<Node> parse_template(std::string_view source);

}  // namespace respawn::jinja
