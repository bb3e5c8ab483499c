// The Jinja lexer and parser: template text -> segments (text, {{ }}, {% %}) with transformers'
// whitespace settings (trim_blocks, lstrip_blocks, no trailing newline) -> a tree of Nodes.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <set>

#include "jinja_ast.hpp"
#include "respawn/utf8.hpp"

namespace respawn::jinja {
namespace {

[[noreturn]] void syntax_error(const std::string& message, int line) {
  throw JinjaError(TemplateError::Kind::syntax, message, line);
}

[[noreturn]] void unsupported(const std::string& what, int line) {
  throw JinjaError(TemplateError::Kind::unsupported, "unsupported construct: " + what, line);
}

// The filters and tests jinja2 3.1 has, and the ones implemented here (jinja_render.cpp).
const std::set<std::string, std::less<>> kJinjaFilters = {
    "abs",    "attr",       "batch",       "capitalize", "center",   "count",
    "d",      "default",    "dictsort",    "e",          "escape",   "filesizeformat",
    "first",  "float",      "forceescape", "format",     "groupby",  "indent",
    "int",    "items",      "join",        "last",       "length",   "list",
    "lower",  "map",        "max",         "min",        "pprint",   "random",
    "reject", "rejectattr", "replace",     "reverse",    "round",    "safe",
    "select", "selectattr", "slice",       "sort",       "string",   "striptags",
    "sum",    "title",      "tojson",      "trim",       "truncate", "unique",
    "upper",  "urlencode",  "urlize",      "wordcount",  "wordwrap", "xmlattr"};
const std::set<std::string, std::less<>> kSupportedFilters = {
    "abs",     "capitalize", "count",  "d",          "default", "first",      "float",
    "indent",  "int",        "items",  "join",       "last",    "length",     "list",
    "lower",   "map",        "max",    "min",        "reject",  "rejectattr", "replace",
    "reverse", "safe",       "select", "selectattr", "sort",    "string",     "sum",
    "title",   "tojson",     "trim",   "unique",     "upper",   "wordcount",  "dictsort"};
const std::set<std::string, std::less<>> kJinjaTests = {
    "!=",       "<",        "<=",          "==",       ">",           ">=",       "boolean",
    "callable", "defined",  "divisibleby", "eq",       "equalto",     "escaped",  "even",
    "false",    "filter",   "float",       "ge",       "greaterthan", "gt",       "in",
    "integer",  "iterable", "le",          "lessthan", "lower",       "lt",       "mapping",
    "ne",       "none",     "number",      "odd",      "sameas",      "sequence", "string",
    "test",     "true",     "undefined",   "upper"};
const std::set<std::string, std::less<>> kUnsupportedTests = {"escaped", "filter", "test"};

struct Token {
  enum class Type { name, integer, floating, string, op };
  Type type = Type::op;
  std::string text;  // name, operator, or the decoded string
  int64_t i = 0;
  double d = 0;
  int line = 0;
};

struct Segment {
  enum class Type { text, var, block };
  Type type = Type::text;
  std::string text;
  std::vector<Token> tokens;
  int line = 0;
};

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string rstrip_ws(std::string s) {
  // Python's \s (unicode): strip code points from the right while they are white space.
  return python_strip(s, false, true, std::nullopt);
}

std::size_t skip_ws_forward(const std::string& s, std::size_t pos) {
  while (pos < s.size()) {
    std::size_t len;
    if (!is_python_space(s, pos, &len)) break;
    pos += len;
  }
  return pos;
}

class Scanner {
 public:
  explicit Scanner(std::string_view source) {
    // Newlines are normalized to \n and one trailing newline is dropped (keep_trailing_newline
    // is False), as jinja2's lexer does.
    src_.reserve(source.size());
    for (std::size_t k = 0; k < source.size(); ++k) {
      if (source[k] == '\r') {
        src_ += '\n';
        if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
      } else {
        src_ += source[k];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Segment> scan() {
    std::size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      std::size_t start = find_tag(pos);
      if (start == std::string::npos) {
        emit_text(src_.substr(pos), pos);
        break;
      }
      std::string text = src_.substr(pos, start - pos);
      char kind = src_[start + 1];
      std::size_t p = start + 2;
      char mod = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) mod = src_[p++];
      if (mod == '-') {
        text = rstrip_ws(std::move(text));
      } else if (kind != '{' && mod != '+') {
        // lstrip_blocks: white space from the start of the line to a block or comment tag.
        std::size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          bool blank = std::all_of(text.begin() + static_cast<std::ptrdiff_t>(l_pos), text.end(),
                                   [](char c) { return is_ws(c); });
          if (blank) text.resize(l_pos);
        }
      }
      emit_text(std::move(text), pos);
      if (kind == '#') {
        std::size_t end = src_.find("#}", p);
        if (end == std::string::npos) syntax_error("missing end of comment tag", line_of(start));
        pos = end + 2;
        if (end > p && src_[end - 1] == '-') {
          pos = skip_ws_forward(src_, pos);
        } else if (!(end > p && src_[end - 1] == '+') && pos < src_.size() && src_[pos] == '\n') {
          ++pos;  // trim_blocks
        }
      } else {
        Segment seg;
        seg.type = kind == '{' ? Segment::Type::var : Segment::Type::block;
        seg.line = line_of(start);
        pos = tokenize(p, kind == '{' ? '}' : '%', seg.tokens);
        if (seg.type == Segment::Type::block && !seg.tokens.empty() &&
            seg.tokens[0].type == Token::Type::name && seg.tokens[0].text == "raw") {
          if (seg.tokens.size() != 1) syntax_error("expected end of raw tag", seg.line);
          // jinja2's raw tag takes no +%} and its %} does not eat a newline (no trim_blocks)
          if (close_mod_ == '+') syntax_error("Encountered unknown tag 'raw'.", seg.line);
          if (close_mod_ == 0) pos = close_end_;
          pos = scan_raw(pos, seg.line);
        } else {
          segments_.push_back(std::move(seg));
        }
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    return std::move(segments_);
  }

 private:
  std::size_t find_tag(std::size_t pos) const {
    while (true) {
      std::size_t k = src_.find('{', pos);
      if (k == std::string::npos || k + 1 >= src_.size()) return std::string::npos;
      char c = src_[k + 1];
      if (c == '{' || c == '%' || c == '#') return k;
      pos = k + 1;
    }
  }

  int line_of(std::size_t pos) {
    while (line_pos_ < pos && line_pos_ < src_.size()) {
      if (src_[line_pos_] == '\n') ++line_;
      ++line_pos_;
    }
    return line_;
  }

  void emit_text(std::string text, std::size_t pos) {
    if (text.empty()) return;
    Segment seg;
    seg.type = Segment::Type::text;
    seg.line = line_of(pos);
    seg.text = std::move(text);
    segments_.push_back(std::move(seg));
  }

  // {% raw %}...{% endraw %}: the text between is output as is.
  std::size_t scan_raw(std::size_t pos, int line) {
    std::size_t search = pos;
    while (true) {
      std::size_t k = src_.find("{%", search);
      if (k == std::string::npos) syntax_error("missing {% endraw %}", line);
      std::size_t p = k + 2;
      char mod = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) mod = src_[p++];
      while (p < src_.size() && is_ws(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) {
        search = k + 2;
        continue;
      }
      p += 6;
      while (p < src_.size() && is_ws(src_[p])) ++p;
      char end_mod = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) end_mod = src_[p++];
      if (src_.compare(p, 2, "%}") != 0) syntax_error("expected end of endraw tag", line_of(k));
      p += 2;
      std::string text = src_.substr(pos, k - pos);
      if (mod == '-') {
        text = rstrip_ws(std::move(text));
      } else if (mod != '+') {
        std::size_t l_pos = text.rfind('\n');
        if (l_pos != std::string::npos &&
            std::all_of(text.begin() + static_cast<std::ptrdiff_t>(l_pos + 1), text.end(),
                        [](char c) { return is_ws(c); }))
          text.resize(l_pos + 1);
      }
      emit_text(std::move(text), pos);
      if (end_mod == '-') return skip_ws_forward(src_, p);
      if (end_mod != '+' && p < src_.size() && src_[p] == '\n') ++p;
      return p;
    }
  }

  // Reads the tokens of a {{ }} (close '}') or {% %} (close '%') tag from pos; returns the
  // position after the tag and its trailing white space handling.
  std::size_t tokenize(std::size_t pos, char close, std::vector<Token>& out) {
    int depth = 0;
    const std::size_t n = src_.size();
    while (true) {
      while (pos < n && is_ws(src_[pos])) ++pos;
      if (pos >= n) syntax_error(close == '}' ? "missing '}}'" : "missing '%}'", line_of(pos));
      int line = line_of(pos);
      if (depth == 0) {
        // -}} / +}} / }}  or  -%} / +%} / %}
        char c = src_[pos];
        std::size_t q = pos;
        char mod = 0;
        if ((c == '-' || c == '+') && pos + 2 < n + 0 && src_[pos + 1] == close &&
            src_[pos + 2] == '}') {
          mod = c;
          q = pos + 1;
        }
        if (q + 1 < n && src_[q] == close && src_[q + 1] == '}') {
          std::size_t after = q + 2;
          close_mod_ = mod;
          close_end_ = after;
          if (mod == '-') return skip_ws_forward(src_, after);
          if (close == '%' && mod != '+' && after < n && src_[after] == '\n') ++after;
          return after;
        }
      }
      char c = src_[pos];
      Token t;
      t.line = line;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::size_t e = pos;
        while (e < n && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        t.type = Token::Type::name;
        t.text = src_.substr(pos, e - pos);
        pos = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        std::size_t e = pos;
        auto digits = [&] {
          while (e < n && (std::isdigit(static_cast<unsigned char>(src_[e])) ||
                           (src_[e] == '_' && e + 1 < n &&
                            std::isdigit(static_cast<unsigned char>(src_[e + 1])))))
            ++e;
        };
        digits();
        bool is_float = false;
        if (e + 1 < n && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
          is_float = true;
          ++e;
          digits();
        }
        if (e < n && (src_[e] == 'e' || src_[e] == 'E')) {
          std::size_t f = e + 1;
          if (f < n && (src_[f] == '+' || src_[f] == '-')) ++f;
          if (f < n && std::isdigit(static_cast<unsigned char>(src_[f]))) {
            is_float = true;
            e = f;
            digits();
          }
        }
        std::string num;
        for (std::size_t k = pos; k < e; ++k)
          if (src_[k] != '_') num += src_[k];
        if (is_float) {
          t.type = Token::Type::floating;
          t.d = std::strtod(num.c_str(), nullptr);
        } else {
          t.type = Token::Type::integer;
          errno = 0;
          t.i = std::strtoll(num.c_str(), nullptr, 10);
          if (errno == ERANGE) unsupported("integer literal beyond 64 bits", line);
        }
        pos = e;
      } else if (c == '"' || c == '\'') {
        t.type = Token::Type::string;
        pos = read_string(pos, t.text);
      } else {
        static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                     "/",  "%",  "~",  "<",  ">",  "=",  ".", ",", ":",
                                     "|",  "(",  ")",  "[",  "]",  "{",  "}"};
        const char* found = nullptr;
        for (const char* op : kOps)
          if (src_.compare(pos, std::char_traits<char>::length(op), op) == 0) {
            found = op;
            break;
          }
        if (!found) syntax_error(std::string("unexpected char '") + c + "'", line);
        t.type = Token::Type::op;
        t.text = found;
        pos += t.text.size();
        if (t.text == "(" || t.text == "[" || t.text == "{") ++depth;
        if (t.text == ")" || t.text == "]" || t.text == "}") {
          if (depth == 0) syntax_error("unexpected '" + t.text + "'", line);
          --depth;
        }
      }
      out.push_back(std::move(t));
    }
  }

  // A string literal with Python's escapes (jinja2 decodes them with unicode-escape).
  std::size_t read_string(std::size_t pos, std::string& out) {
    char quote = src_[pos++];
    int line = line_of(pos);
    while (true) {
      if (pos >= src_.size()) syntax_error("unterminated string", line);
      char c = src_[pos];
      if (c == quote) return pos + 1;
      if (c != '\\') {
        out += c;
        ++pos;
        continue;
      }
      if (pos + 1 >= src_.size()) syntax_error("unterminated string", line);
      char e = src_[pos + 1];
      pos += 2;
      auto hex = [&](int digits) {
        if (pos + digits > src_.size()) syntax_error("truncated \\x/\\u escape", line);
        uint32_t cp = 0;
        for (int k = 0; k < digits; ++k) {
          char h = src_[pos + k];
          if (!std::isxdigit(static_cast<unsigned char>(h)))
            syntax_error("truncated \\x/\\u escape", line);
          cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                   ? h - '0'
                                                   : std::tolower(h) - 'a' + 10);
        }
        pos += digits;
        append_utf8(out, cp);
      };
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\n':
          break;  // a line continuation
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        default:
          if (e >= '0' && e <= '7') unsupported("octal escape in a string literal", line);
          if (e == 'N') unsupported("\\N{...} escape in a string literal", line);
          out += '\\';
          out += e;
      }
    }
  }

  std::string src_;
  std::vector<Segment> segments_;
  char close_mod_ = 0;         // the last tag's closing modifier ('-', '+' or none)
  std::size_t close_end_ = 0;  // and the position just after its }} or %}
  std::size_t line_pos_ = 0;
  int line_ = 1;
};

// ---------------------------------------------------------------------------------------------

class Parser {
 public:
  explicit Parser(std::vector<Segment> segments) : segs_(std::move(segments)) {}

  std::unique_ptr<Node> parse() {
    auto root = std::make_unique<Node>();
    root->kind = Node::Kind::body;
    root->bodies.push_back(parse_body({}));
    if (seg_ < segs_.size()) {
      const Segment& s = segs_[seg_];
      syntax_error("Encountered unknown tag '" + s.tokens[0].text + "'", s.line);
    }
    return root;
  }

 private:
  // ---- statements ----

  // Parses nodes until a block tag whose name is in `ends` (left unconsumed) or the end.
  Body parse_body(const std::vector<std::string>& ends) {
    Body body;
    while (seg_ < segs_.size()) {
      Segment& s = segs_[seg_];
      if (s.type == Segment::Type::text) {
        auto node = std::make_unique<Node>();
        node->kind = Node::Kind::text;
        node->line = s.line;
        node->text = std::move(s.text);
        body.push_back(std::move(node));
        ++seg_;
        continue;
      }
      begin(s);
      if (s.type == Segment::Type::var) {
        auto node = std::make_unique<Node>();
        node->kind = Node::Kind::output;
        node->line = s.line;
        if (at_end()) syntax_error("Expected an expression, got 'end of print statement'", s.line);
        node->exprs.push_back(parse_tuple(true));
        expect_end();
        body.push_back(std::move(node));
        ++seg_;
        continue;
      }
      if (at_end() || cur().type != Token::Type::name) syntax_error("tag name expected", s.line);
      const std::string tag = cur().text;
      if (std::find(ends.begin(), ends.end(), tag) != ends.end()) return body;
      ++tok_;
      body.push_back(parse_statement(tag, s.line));
    }
    if (!ends.empty()) {
      syntax_error("Unexpected end of template. Jinja was looking for one of: " + join(ends),
                   segs_.empty() ? 0 : segs_.back().line);
    }
    return body;
  }

  static std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
    return out;
  }

  // At the end tag named `name` (after parse_body stopped there): consume it.
  void finish_tag() {
    expect_end();
    ++seg_;
  }

  // The current segment is an end tag from `ends`; returns its name after consuming it.
  std::string take_tag_name() {
    std::string name = cur().text;
    ++tok_;
    return name;
  }

  NodePtr parse_statement(const std::string& tag, int line) {
    NestingGuard guard(nesting_, line);
    auto node = std::make_unique<Node>();
    node->line = line;
    if (tag == "if") {
      node->kind = Node::Kind::if_;
      node->exprs.push_back(parse_tuple(false, true));
      finish_tag();
      while (true) {
        node->bodies.push_back(parse_body({"elif", "else", "endif"}));
        std::string t = take_tag_name();
        if (t == "elif") {
          node->exprs.push_back(parse_tuple(false, true));
          finish_tag();
        } else if (t == "else") {
          finish_tag();
          node->bodies.push_back(parse_body({"endif"}));
          take_tag_name();
          finish_tag();
          break;
        } else {
          finish_tag();
          break;
        }
      }
      return node;
    }
    if (tag == "for") {
      node->kind = Node::Kind::for_;
      node->targets = parse_targets();
      expect_name("in");
      node->exprs.push_back(parse_tuple(false, false, {"recursive", "if"}));
      if (is_name("if")) {
        ++tok_;
        node->has_filter = true;
        node->exprs.push_back(parse_tuple(false, true, {"recursive"}));
      }
      if (is_name("recursive")) unsupported("recursive for loop", line);
      finish_tag();
      ++loop_depth_;
      node->bodies.push_back(parse_body({"endfor", "else"}));
      --loop_depth_;
      if (take_tag_name() == "else") {
        finish_tag();
        node->bodies.push_back(parse_body({"endfor"}));
        take_tag_name();
      }
      finish_tag();
      return node;
    }
    if (tag == "set") {
      if (at_end() || cur().type != Token::Type::name)
        syntax_error("expected a name after set", line);
      std::string first = cur().text;
      if (tok_ + 2 < toks().size() && toks()[tok_ + 1].text == "." &&
          toks()[tok_ + 1].type == Token::Type::op) {
        tok_ += 2;
        if (cur().type != Token::Type::name) syntax_error("expected an attribute name", line);
        node->targets = {first};
        node->attr = cur().text;
        ++tok_;
      } else {
        node->targets = parse_targets();
      }
      if (is_op("=")) {
        ++tok_;
        node->kind = Node::Kind::set;
        node->exprs.push_back(parse_tuple(true));
        finish_tag();
        return node;
      }
      if (!node->attr.empty() || node->targets.size() != 1)
        syntax_error("a block set assigns one name", line);
      if (is_op("|")) unsupported("{% set name | filter %} block", line);
      node->kind = Node::Kind::set_block;
      finish_tag();
      node->bodies.push_back(parse_body({"endset"}));
      take_tag_name();
      finish_tag();
      return node;
    }
    if (tag == "macro") {
      node->kind = Node::Kind::macro;
      if (at_end() || cur().type != Token::Type::name) syntax_error("expected a macro name", line);
      node->text = cur().text;
      ++tok_;
      expect_op("(");
      while (!is_op(")")) {
        if (!node->params.empty()) expect_op(",");
        if (is_op(")")) break;
        if (at_end() || cur().type != Token::Type::name)
          syntax_error("expected a parameter name", line);
        std::string pname = cur().text;
        ++tok_;
        ExprPtr def;
        if (is_op("=")) {
          ++tok_;
          def = parse_expression(true);
        }
        node->params.emplace_back(std::move(pname), std::move(def));
      }
      expect_op(")");
      finish_tag();
      int saved = loop_depth_;
      loop_depth_ = 0;
      node->bodies.push_back(parse_body({"endmacro"}));
      loop_depth_ = saved;
      take_tag_name();
      if (!at_end() && cur().type == Token::Type::name) ++tok_;  // {% endmacro name %}
      finish_tag();
      return node;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) syntax_error("'" + tag + "' outside of a loop", line);
      node->kind = tag == "break" ? Node::Kind::break_ : Node::Kind::continue_;
      finish_tag();
      return node;
    }
    if (tag == "with") {
      node->kind = Node::Kind::with;
      while (!at_end()) {
        if (!node->params.empty()) expect_op(",");
        if (at_end() || cur().type != Token::Type::name) syntax_error("expected a name", line);
        std::string pname = cur().text;
        ++tok_;
        expect_op("=");
        node->params.emplace_back(std::move(pname), parse_expression(true));
      }
      finish_tag();
      node->bodies.push_back(parse_body({"endwith"}));
      take_tag_name();
      finish_tag();
      return node;
    }
    if (tag == "generation") {
      node->kind = Node::Kind::generation;
      finish_tag();
      node->bodies.push_back(parse_body({"endgeneration"}));
      take_tag_name();
      finish_tag();
      return node;
    }
    static const std::set<std::string> kUnsupportedTags = {
        "include", "import", "from",       "extends", "block",     "call",
        "filter",  "do",     "autoescape", "trans",   "pluralize", "print"};
    if (kUnsupportedTags.count(tag)) unsupported("{% " + tag + " %}", line);
    syntax_error("Encountered unknown tag '" + tag + "'", line);
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool paren = is_op("(");
    if (paren) ++tok_;
    while (true) {
      if (at_end() || cur().type != Token::Type::name)
        syntax_error("expected a name to assign to", line());
      names.push_back(cur().text);
      ++tok_;
      if (!is_op(",")) break;
      ++tok_;
      if (paren && is_op(")")) break;
      if (!paren && (is_name("in") || is_op("="))) break;
    }
    if (paren) expect_op(")");
    if (names.size() == 1 && !paren) return names;
    if (names.size() == 1) names.push_back("");  // "(x,)" unpacks one item; marked by ""
    return names;
  }

  // ---- expressions ----

  ExprPtr make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // A tuple without parentheses (a, b) where allowed, else one expression.
  ExprPtr parse_tuple(bool with_condexpr, bool force_single = false,
                      const std::vector<std::string>& extra_ends = {}) {
    int l = line();
    std::vector<ExprPtr> items;
    bool comma = false;
    while (true) {
      if (!items.empty()) {
        if (!is_op(",")) break;
        ++tok_;
        comma = true;
      }
      if (at_end() || is_op(")") || is_op("]") || is_op("}") || is_op("=")) break;
      bool stop = false;
      for (const auto& n : extra_ends)
        if (is_name(n)) stop = true;
      if (stop) break;
      items.push_back(with_condexpr ? parse_expression(true) : parse_or());
      if (force_single) break;
    }
    if (items.empty()) syntax_error("Expected an expression", l);
    if (!comma) return std::move(items[0]);
    auto t = make(Expr::Kind::list, l);
    t->is_tuple = true;
    t->args = std::move(items);
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  // Nesting beyond this is refused rather than risking the stack (no real template is close).
  static constexpr int kMaxNesting = 200;
  struct NestingGuard {
    int& depth;
    NestingGuard(int& d, int line) : depth(++d) {
      if (depth > kMaxNesting) {
        --depth;
        syntax_error("the template nests too deeply", line);
      }
    }
    ~NestingGuard() { --depth; }
  };

  ExprPtr parse_condexpr() {
    NestingGuard guard(nesting_, line());
    ExprPtr expr1 = parse_or();
    while (is_name("if")) {
      int l = line();
      ++tok_;
      ExprPtr cond = parse_or();
      ExprPtr otherwise;
      if (is_name("else")) {
        ++tok_;
        otherwise = parse_condexpr();
      }
      auto e = make(Expr::Kind::cond, l);
      e->args.push_back(std::move(cond));
      e->args.push_back(std::move(expr1));
      e->args.push_back(std::move(otherwise));
      expr1 = std::move(e);
    }
    return expr1;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      auto e = make(Expr::Kind::or_, line());
      ++tok_;
      e->args.push_back(std::move(left));
      e->args.push_back(parse_and());
      left = std::move(e);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      auto e = make(Expr::Kind::and_, line());
      ++tok_;
      e->args.push_back(std::move(left));
      e->args.push_back(parse_not());
      left = std::move(e);
    }
    return left;
  }

  ExprPtr parse_not() {
    NestingGuard guard(nesting_, line());
    if (is_name("not")) {
      auto e = make(Expr::Kind::not_, line());
      ++tok_;
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int l = line();
    ExprPtr expr = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      if (!at_end() && cur().type == Token::Type::op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
           cur().text == "<=" || cur().text == ">=")) {
        ops.push_back(cur().text);
        ++tok_;
      } else if (is_name("in")) {
        ops.push_back("in");
        ++tok_;
      } else if (is_name("not") && tok_ + 1 < toks().size() &&
                 toks()[tok_ + 1].type == Token::Type::name && toks()[tok_ + 1].text == "in") {
        ops.push_back("notin");
        tok_ += 2;
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return expr;
    auto e = make(Expr::Kind::compare, l);
    e->args.push_back(std::move(expr));
    for (auto& o : operands) e->args.push_back(std::move(o));
    e->ops = std::move(ops);
    return e;
  }

  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, int l) {
    auto e = make(Expr::Kind::binary, l);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().text;
      int l = line();
      ++tok_;
      left = binary(op, std::move(left), parse_concat(), l);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      int l = line();
      ++tok_;
      left = binary("~", std::move(left), parse_math2(), l);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().text;
      int l = line();
      ++tok_;
      left = binary(op, std::move(left), parse_pow(), l);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      int l = line();
      ++tok_;
      left = binary("**", std::move(left), parse_unary(true), l);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    NestingGuard guard(nesting_, line());
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      auto e = make(cur().text == "-" ? Expr::Kind::neg : Expr::Kind::pos, line());
      ++tok_;
      e->args.push_back(parse_unary(false));
      node = std::move(e);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    if (at_end()) syntax_error("unexpected end of expression", line());
    const Token& t = cur();
    int l = t.line;
    switch (t.type) {
      case Token::Type::name: {
        auto e = make(Expr::Kind::literal, l);
        if (t.text == "true" || t.text == "True") {
          e->value = Value::boolean(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value::boolean(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::name;
          e->name = t.text;
        }
        ++tok_;
        return e;
      }
      case Token::Type::string: {
        std::string s;
        while (!at_end() && cur().type == Token::Type::string) {
          s += cur().text;
          ++tok_;
        }
        auto e = make(Expr::Kind::literal, l);
        e->value = Value::string(std::move(s));
        return e;
      }
      case Token::Type::integer: {
        auto e = make(Expr::Kind::literal, l);
        e->value = Value::integer(t.i);
        ++tok_;
        return e;
      }
      case Token::Type::floating: {
        auto e = make(Expr::Kind::literal, l);
        e->value = Value::floating(t.d);
        ++tok_;
        return e;
      }
      case Token::Type::op:
        break;
    }
    if (is_op("(")) {
      ++tok_;
      if (is_op(")")) {
        ++tok_;
        auto e = make(Expr::Kind::list, l);
        e->is_tuple = true;
        return e;
      }
      ExprPtr inner = parse_tuple(true);
      expect_op(")");
      return inner;
    }
    if (is_op("[")) {
      ++tok_;
      auto e = make(Expr::Kind::list, l);
      while (!is_op("]")) {
        if (!e->args.empty()) {
          expect_op(",");
          if (is_op("]")) break;
        }
        e->args.push_back(parse_expression(true));
      }
      expect_op("]");
      return e;
    }
    if (is_op("{")) {
      ++tok_;
      auto e = make(Expr::Kind::dict, l);
      while (!is_op("}")) {
        if (!e->dict_items.empty()) {
          expect_op(",");
          if (is_op("}")) break;
        }
        ExprPtr key = parse_expression(true);
        expect_op(":");
        e->dict_items.emplace_back(std::move(key), parse_expression(true));
      }
      expect_op("}");
      return e;
    }
    syntax_error("unexpected '" + t.text + "'", l);
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    int l = line();
    if (is_op(".")) {
      ++tok_;
      if (!at_end() && cur().type == Token::Type::name) {
        auto e = make(Expr::Kind::getattr, l);
        e->name = cur().text;
        ++tok_;
        e->args.push_back(std::move(node));
        return e;
      }
      if (!at_end() && cur().type == Token::Type::integer) {
        auto e = make(Expr::Kind::getitem, l);
        auto idx = make(Expr::Kind::literal, l);
        idx->value = Value::integer(cur().i);
        ++tok_;
        e->args.push_back(std::move(node));
        e->args.push_back(std::move(idx));
        return e;
      }
      syntax_error("expected name or number after '.'", l);
    }
    expect_op("[");
    ExprPtr parts[3];
    bool is_slice = false;
    int part = 0;
    while (!is_op("]")) {
      if (is_op(":")) {
        is_slice = true;
        if (++part > 2) syntax_error("too many ':' in a subscript", l);
        ++tok_;
        continue;
      }
      if (is_op(",")) unsupported("a tuple subscript", l);
      if (parts[part]) syntax_error("expected ']'", l);
      parts[part] = parse_expression(true);
    }
    expect_op("]");
    if (!is_slice) {
      if (!parts[0]) syntax_error("expected a subscript", l);
      auto e = make(Expr::Kind::getitem, l);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(parts[0]));
      return e;
    }
    auto e = make(Expr::Kind::slice, l);
    e->args.push_back(std::move(node));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  // ( args, name=kwargs )
  void parse_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) {
        expect_op(",");
        if (is_op(")")) break;
      }
      first = false;
      if (is_op("*") || is_op("**")) unsupported("*args or **kwargs in a call", line());
      if (!at_end() && cur().type == Token::Type::name && tok_ + 1 < toks().size() &&
          toks()[tok_ + 1].type == Token::Type::op && toks()[tok_ + 1].text == "=") {
        std::string key = cur().text;
        tok_ += 2;
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) syntax_error("positional argument after keyword argument", line());
        e.args.push_back(parse_expression(true));
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(Expr::Kind::call, line());
    e->args.push_back(std::move(node));
    parse_args(*e);
    return e;
  }

  ExprPtr parse_filter(ExprPtr node) {
    expect_op("|");
    int l = line();
    if (at_end() || cur().type != Token::Type::name) syntax_error("expected a filter name", l);
    auto e = make(Expr::Kind::filter, l);
    e->name = cur().text;
    ++tok_;
    while (is_op(".")) {
      ++tok_;
      e->name += "." + cur().text;
      ++tok_;
    }
    if (!kJinjaFilters.count(e->name)) syntax_error("No filter named '" + e->name + "'.", l);
    if (!kSupportedFilters.count(e->name)) unsupported("the '" + e->name + "' filter", l);
    e->args.push_back(std::move(node));
    if (is_op("(")) parse_args(*e);
    return e;
  }

  ExprPtr parse_test(ExprPtr node) {
    int l = line();
    ++tok_;  // is
    auto e = make(Expr::Kind::test, l);
    if (is_name("not")) {
      e->negated = true;
      ++tok_;
    }
    if (at_end()) syntax_error("expected a test name", l);
    e->name = cur().text;  // a name or an operator test like ==
    ++tok_;
    if (!kJinjaTests.count(e->name)) syntax_error("No test named '" + e->name + "'.", l);
    if (kUnsupportedTests.count(e->name)) unsupported("the '" + e->name + "' test", l);
    e->args.push_back(std::move(node));
    if (is_op("(")) {
      parse_args(*e);
    } else if (!at_end() &&
               (cur().type != Token::Type::op || cur().text == "(" || cur().text == "[" ||
                cur().text == "{") &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) syntax_error("You cannot chain multiple tests with is", l);
      e->args.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }

  // ---- token helpers ----

  void begin(const Segment& s) {
    cur_seg_ = &s;
    tok_ = 0;
  }
  const std::vector<Token>& toks() const { return cur_seg_->tokens; }
  bool at_end() const { return tok_ >= toks().size(); }
  const Token& cur() const { return toks()[tok_]; }
  int line() const { return at_end() ? cur_seg_->line : cur().line; }
  bool is_op(const char* op) const {
    return !at_end() && cur().type == Token::Type::op && cur().text == op;
  }
  bool is_name(const std::string& n) const {
    return !at_end() && cur().type == Token::Type::name && cur().text == n;
  }
  void expect_op(const char* op) {
    if (!is_op(op))
      syntax_error(std::string("expected '") + op + "'" +
                       (at_end() ? std::string(", got end of tag") : ", got '" + cur().text + "'"),
                   line());
    ++tok_;
  }
  void expect_name(const char* n) {
    if (!is_name(n)) syntax_error(std::string("expected '") + n + "'", line());
    ++tok_;
  }
  void expect_end() {
    if (!at_end()) syntax_error("expected end of tag, got '" + cur().text + "'", line());
  }

  std::vector<Segment> segs_;
  std::size_t seg_ = 0;
  const Segment* cur_seg_ = nullptr;
  std::size_t tok_ = 0;
  int loop_depth_ = 0;
  int nesting_ = 0;
};

}  // namespace

std::unique_ptr<Node> parse_template(std::string_view source) {
  Scanner scanner(source);
  Parser parser(scanner.scan());
  return parser.parse();
}

}  // namespace respawn::jinja
