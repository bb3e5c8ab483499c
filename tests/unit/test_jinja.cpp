// Tests for the Jinja engine's constructs one by one (text/respawn/jinja.hpp). Every expected
// string is what Python jinja2 3.1.6 renders with transformers' environment (trim_blocks,
// lstrip_blocks, loopcontrols, its tojson); whole chat templates are in test_jinja_templates.cpp.
#include "respawn/jinja.hpp"

#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace respawn {
namespace {

using nlohmann::ordered_json;

RenderOptions fixed_now() {
  std::tm tm{};
  tm.tm_year = 2025 - 1900;
  tm.tm_mon = 2;
  tm.tm_mday = 14;
  tm.tm_hour = 15;
  tm.tm_min = 9;
  tm.tm_sec = 26;
  tm.tm_wday = 5;  // a Friday
  tm.tm_yday = 72;
  RenderOptions options;
  options.now = tm;
  return options;
}

// Renders `source` with `vars` (JSON); a parse or render error becomes a failure and "<error>".
std::string render(std::string_view source, std::string_view vars = "{}") {
  auto parsed = JinjaTemplate::parse(source);
  if (!parsed.ok()) {
    ADD_FAILURE() << "parse error: " << parsed.error().message << " (line " << parsed.error().line
                  << ")";
    return "<error>";
  }
  auto out = parsed->render(ordered_json::parse(vars), fixed_now());
  if (!out.ok()) {
    ADD_FAILURE() << "render error: " << out.error().message << " (line " << out.error().line
                  << ")";
    return "<error>";
  }
  return *out;
}

// The error from parsing, or else rendering, `source`; kind render with message "<no error>"
// when there was none.
TemplateError error_of(std::string_view source, std::string_view vars = "{}") {
  auto parsed = JinjaTemplate::parse(source);
  if (!parsed.ok()) return parsed.error();
  auto out = parsed->render(ordered_json::parse(vars), fixed_now());
  if (!out.ok()) return out.error();
  return TemplateError{TemplateError::Kind::render, "<no error>: " + *out, 0};
}

// ---- text and whitespace ----

TEST(JinjaWhitespace, PlainTextIsCopiedAndOneTrailingNewlineIsDropped) {
  EXPECT_EQ(render(R"J(hello
world
)J"),
            "hello\nworld");
  EXPECT_EQ(render("a\n\n"), "a\n");
  EXPECT_EQ(render("a\r\nb\rc"), "a\nb\nc");
}

TEST(JinjaWhitespace, TrimBlocksEatsTheNewlineAfterABlockTagButNotAfterOutput) {
  EXPECT_EQ(render(R"J({% if true %}
yes
{% endif %}
{{ 'x' }}
end)J"),
            "yes\nx\nend");
}

TEST(JinjaWhitespace, LstripBlocksRemovesIndentationBeforeBlockTagsAndComments) {
  EXPECT_EQ(render(R"J(<ul>
    {% for i in [1, 2] %}
    <li>{{ i }}</li>
    {% endfor %}
    {# a comment #}
</ul>)J"),
            "<ul>\n    <li>1</li>\n    <li>2</li>\n</ul>");
}

TEST(JinjaWhitespace, LstripBlocksKeepsTextBeforeATagOnTheSameLine) {
  EXPECT_EQ(render(R"J(a  {% if true %}b{% endif %}  c)J"), "a  b  c");
  EXPECT_EQ(render(R"J({{ 'x' }}  {% if true %}b{% endif %})J"), "x  b");
}

TEST(JinjaWhitespace, MinusStripsAllWhiteSpaceOnThatSide) {
  EXPECT_EQ(render(R"J(a
   {{- 'b' -}}
   c)J"),
            "abc");
  EXPECT_EQ(render(R"J(x {%- if true -%}   y   {%- endif -%} z)J"), "xyz");
  EXPECT_EQ(render(R"J(1 {#- note -#} 2)J"), "12");
}

TEST(JinjaWhitespace, PlusTurnsOffLstripAndTrimForOneTag) {
  EXPECT_EQ(render(R"J(  {%+ if true %}x{% endif +%}
y)J"),
            "  x\ny");
}

TEST(JinjaWhitespace, RawBlocksAreNotInterpreted) {
  EXPECT_EQ(render(R"J({% raw %}{{ not a var }} {% if %}{% endraw %}!)J"),
            "{{ not a var }} {% if %}!");
  // the raw tag itself keeps the newline after it; endraw trims as blocks do
  EXPECT_EQ(render(R"J(a{% raw %}
X{% endraw %}
b)J"),
            "a\nXb");
  EXPECT_EQ(render(R"J(a
  {%- raw -%}  X  {%- endraw -%}  b)J"),
            "aXb");
  EXPECT_EQ(error_of("{% raw +%}x{% endraw %}").kind, TemplateError::Kind::syntax);
}

// ---- printing values as Python's str() does ----

TEST(JinjaValues, PrintedAsPythonWould) {
  EXPECT_EQ(
      render(
          R"J({{ none }}|{{ true }}|{{ False }}|{{ 1.0 }}|{{ 2.5e-7 }}|{{ 1e16 }}|{{ 10 / 4 }})J"),
      "None|True|False|1.0|2.5e-07|1e+16|2.5");
  EXPECT_EQ(
      render(
          R"J({{ [1, 'a', none, true, 0.5] }}|{{ {'k': "it's", 'n': [ ]} }}|{{ (1,) }}|{{ (1, 'b') }})J"),
      "[1, 'a', None, True, 0.5]|{'k': \"it's\", 'n': []}|(1,)|(1, 'b')");
  EXPECT_EQ(render(R"J({{ x }})J", R"({"x": {"a": [1, {"b": null}], "s": "l\nine"}})"),
            "{'a': [1, {'b': None}], 's': 'l\\nine'}");
}

TEST(JinjaValues, StringLiteralsTakePythonEscapes) {
  EXPECT_EQ(render(R"J({{ 'a\tb\\c\'d' }}|{{ "\u00e9\x41\n" }}|{{ 'con' "cat" }})J"),
            "a\tb\\c'd|\xC3\xA9"
            "A\n|concat");
}

TEST(JinjaValues, UndefinedPrintsNothingAndIsFalse) {
  EXPECT_EQ(
      render(
          R"J([{{ missing }}]{% if missing %}yes{% else %}no{% endif %}{{ missing is defined }})J"),
      "[]noFalse");
  EXPECT_EQ(render(R"J([{{ d.nothing }}][{{ d['nothing'] }}][{{ l[5] }}][{{ n.attr }}])J",
                   R"({"d": {"a": 1}, "l": [1], "n": null})"),
            "[][][][]");
}

// ---- expressions ----

TEST(JinjaExpressions, ArithmeticFollowsPython) {
  EXPECT_EQ(
      render(
          R"J({{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 - 4 }} {{ 7.5 // 2 }} {{ -1.5 % 1 }})J"),
      "3 -4 2 -2 1024 3 3.0 0.5");
  EXPECT_EQ(
      render(
          R"J({{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }} {{ 'a' + 'b' }} {{ 1 ~ 'x' ~ none }})J"),
      "ababab [1, 1] [1, 2] ab 1xNone");
  EXPECT_EQ(render(R"J({{ -x }} {{ +3 }} {{ -2 ** 2 }} {{ (2 + 3) ~ 4 }} {{ 'a' ~ 2 * 3 }})J",
                   R"({"x": 5})"),
            "-5 3 4 54 a6");
}

TEST(JinjaExpressions, ComparisonsChainAndMembershipWorksOnStringsListsAndDicts) {
  EXPECT_EQ(
      render(
          R"J({{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ true == 1 }} {{ [1, 2] == [1, 2] }} {{ 'b' > 'abc' }})J"),
      "True False True True True True True");
  EXPECT_EQ(
      render(
          R"J({{ 'ell' in 'hello' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'v' in d }} {{ 3 not in [1] }} {{ 'x' in missing }})J",
          R"({"d": {"k": "v"}})"),
      "True True True False True False");
}

TEST(JinjaExpressions, AndOrReturnAnOperandAndNotNegates) {
  EXPECT_EQ(
      render(
          R"J({{ 0 or 'b' }} {{ 'a' and 'b' }} {{ '' and 'b' }}| {{ not 0 }} {{ not 'x' }} {{ none or [] }})J"),
      "b b | True False []");
}

TEST(JinjaExpressions, ConditionalExpressionWithAndWithoutElse) {
  EXPECT_EQ(
      render(
          R"J({{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}] {{ 'a' if 0 else 'b' if 1 else 'c' }})J"),
      "y n [] b");
}

TEST(JinjaExpressions, SubscriptsAndSlicesCountCodePoints) {
  const char* vars = R"({"l": [1, 2, 3, 4, 5], "s": "h\u00e9llo w\u00f6rld \ud83d\ude00"})";
  EXPECT_EQ(
      render(
          R"J({{ l[1:] }} {{ l[:-2] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-1] }} {{ l[1:4:2] }} {{ l[10:] }} {{ l[3:1:-1] }})J",
          vars),
      "[2, 3, 4, 5] [1, 2, 3] [5, 4, 3, 2, 1] [1, 3, 5] 5 [2, 4] [] [4, 3]");
  EXPECT_EQ(
      render(R"J({{ s[1] }}|{{ s[-1] }}|{{ s[:5] }}|{{ s[::-1] }}|{{ s|length }}|{{ s.0 }})J",
             vars),
      "\xC3\xA9|\xF0\x9F\x98\x80|h\xC3\xA9llo|\xF0\x9F\x98\x80 dlr\xC3\xB6w oll\xC3\xA9h|13|h");
}

TEST(JinjaExpressions, AnIndexThatPythonRefusesIsUndefinedButABadSliceIsAnError) {
  // jinja2's getitem turns the TypeError of x[k] into an undefined value; slices bypass it
  EXPECT_EQ(render(R"J([{{ 5[0] }}][{{ n[0] }}][{{ l['a'] }}][{{ d[0] }}][{{ (l | select)[0] }}])J",
                   R"({"n": null, "l": [1], "d": {"a": 1}})"),
            "[][][][][]");
  for (const char* source :
       {"{{ n[1:] }}", "{{ l['a':] }}", "{{ d[1:] }}", "{{ l[::0] }}", "{{ (l | select)[1:] }}"}) {
    EXPECT_EQ(error_of(source, R"({"n": null, "l": [1], "d": {"a": 1}})").kind,
              TemplateError::Kind::render)
        << source;
  }
}

TEST(JinjaExpressions, AttributeAndItemAccessOnMappings) {
  const char* vars = R"({"m": {"role": "user", "content": {"text": "hi"}, "n": null}})";
  EXPECT_EQ(
      render(
          R"J({{ m.role }} {{ m['role'] }} {{ m.content.text }} {{ m['content']['text'] }} {{ m.n }})J",
          vars),
      "user user hi hi None");
}

// ---- statements ----

TEST(JinjaStatements, IfElifElse) {
  const char* source =
      R"J({% if n > 10 %}big{% elif n > 5 %}medium{% elif n %}small{% else %}zero{% endif %})J";
  EXPECT_EQ(render(source, R"({"n": 11})"), "big");
  EXPECT_EQ(render(source, R"({"n": 6})"), "medium");
  EXPECT_EQ(render(source, R"({"n": 1})"), "small");
  EXPECT_EQ(render(source, R"({"n": 0})"), "zero");
}

TEST(JinjaStatements, ForLoopVariables) {
  EXPECT_EQ(
      render(
          R"J({% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ x }};{% endfor %})J"),
      "1032TrueFalse3a;2121FalseFalse3b;3210FalseTrue3c;");
  EXPECT_EQ(
      render(
          R"J({% for x in [1, 2, 3] %}{{ loop.previtem | default('-') }}{{ x }}{{ loop.nextitem | default('-') }} {% endfor %})J"),
      "-12 123 23- ");
  EXPECT_EQ(render(R"J({% for x in [1, 2, 3] %}{{ loop.cycle('odd', 'even') }} {% endfor %})J"),
            "odd even odd ");
}

TEST(JinjaStatements, ForElseAndFilteredLoops) {
  EXPECT_EQ(
      render(
          R"J({% for x in [] %}{{ x }}{% else %}empty{% endfor %}|{% for x in missing %}{{ x }}{% else %}none{% endfor %})J"),
      "empty|none");
  EXPECT_EQ(
      render(
          R"J({% for x in range(10) if x is odd %}{{ x }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %})J"),
      "1/5,3/5,5/5,7/5,9/5");
}

TEST(JinjaStatements, BreakAndContinue) {
  EXPECT_EQ(
      render(
          R"J({% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %})J"),
      "0134");
}

TEST(JinjaStatements, LoopsOverDictsGiveKeysAndItemsUnpack) {
  const char* vars = R"({"d": {"b": 1, "a": [2]}})";
  EXPECT_EQ(
      render(
          R"J({% for k in d %}{{ k }}{% endfor %} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for k, v in d|items %}{{ k }}{% endfor %})J",
          vars),
      "ba b=1;a=[2]; ba");
}

TEST(JinjaStatements, NestedLoopsEachHaveTheirOwnLoopVariable) {
  EXPECT_EQ(
      render(
          R"J({% for a in [1, 2] %}{% set outer = loop %}{% for b in 'xy' %}{{ outer.index }}{{ loop.index }}{{ b }} {% endfor %}{% endfor %})J"),
      "11x 12y 21x 22y ");
}

TEST(JinjaStatements, SetInsideALoopDoesNotLeakButNamespaceAttributesDo) {
  EXPECT_EQ(
      render(
          R"J({% set x = 0 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}{% endfor %}{{ x }})J"),
      "[0][0]0");
  EXPECT_EQ(
      render(
          R"J({% set ns = namespace(total=0, seen=false) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% set ns.seen = true %}{% endfor %}{{ ns.total }} {{ ns.seen }})J"),
      "6 True");
  EXPECT_EQ(
      render(
          R"J({% set ns = namespace() %}{% set ns.index = 0 %}{% set ns.index = ns.index + 1 %}{{ ns.index }})J"),
      "1");
}

TEST(JinjaStatements, SetUnpacksTuplesAndBlockSetCapturesOutput) {
  EXPECT_EQ(
      render(
          R"J({% set a, b = 1, 'two' %}{{ a }}{{ b }} {% set t = 1, 2 %}{{ t }} {% set body %}x{{ a }}y{% endset %}{{ body | upper }})J"),
      "1two (1, 2) X1Y");
}

TEST(JinjaStatements, IfDoesNotOpenAScope) {
  EXPECT_EQ(render(R"J({% if true %}{% set x = 'inside' %}{% endif %}{{ x }})J"), "inside");
}

TEST(JinjaStatements, MacrosTakeDefaultsAndKeywordsAndSeeLaterGlobals) {
  EXPECT_EQ(
      render(
          R"J({% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bo', punct='?') }} {{ greet(punct='.', name='Cy') }})J"),
      "Hi Ann! Hi Bo? Hi Cy.");
  EXPECT_EQ(
      render(R"J({% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }})J"),
      "2");
  EXPECT_EQ(render(R"J({%- macro render_item(item) -%}
  <{{ item | trim }}>
{%- endmacro -%}
{%- for i in [' a ', 'b'] %}{{ render_item(i) }}{% endfor %})J"),
            "<a><b>");
}

TEST(JinjaStatements, WithOpensAScope) {
  EXPECT_EQ(render(R"J({% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}])J"), "3[]");
}

TEST(JinjaStatements, TransformersGenerationBlockRendersItsBody) {
  // transformers' AssistantTracker extension adds {% generation %}; rendering, it is transparent.
  const std::string source = "a{% generation %}{{ 'kept' }}{% endgeneration %}b";
  EXPECT_EQ(render(source), "akeptb");
}

// ---- filters ----

TEST(JinjaFilters, StringFilters) {
  EXPECT_EQ(
      render(
          R"J([{{ '  a b \n' | trim }}] [{{ 'xxaxx' | trim('x') }}] {{ 'aBc' | upper }} {{ 'aBc' | lower }} {{ 'hELLO wORLD' | capitalize }} {{ 'hello big-world' | title }} {{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 42 | string }} {{ 'x' | string | length }})J"),
      "[a b] [a] ABC abc Hello world Hello Big-World a+b+c bba 42 1");
}

TEST(JinjaFilters, DefaultAppliesToUndefinedOnlyUnlessBoolean) {
  EXPECT_EQ(
      render(
          R"J({{ missing | default('d') }} {{ none | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ missing | d('x') }})J"),
      "d None  d x");
}

TEST(JinjaFilters, SequenceFilters) {
  EXPECT_EQ(
      render(
          R"J({{ [1, 2, 3] | length }} {{ {'a': 1} | count }} {{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ [1, 2] | join(', ') }} {{ 'abc' | list }} {{ [3, 1, 2] | sort }} {{ [1, 2] | reverse | list }} {{ [1, 2, 1] | unique | list }} {{ [1, 2, 3] | sum }} {{ [4, 2, 8] | min }} {{ [4, 2, 8] | max }})J"),
      "3 1 3 2 1, 2 ['a', 'b', 'c'] [1, 2, 3] [2, 1] [1, 2] 6 2 8");
}

TEST(JinjaFilters, CaseMappingCoversLatinGreekCyrillicAndLeavesCaselessScripts) {
  EXPECT_EQ(
      render(
          R"J({{ 'àéîõü ÀÉÎÕÜ' | upper }} {{ 'ĀĂĄ' | lower }} {{ 'αβγ ΑΒΓ' | upper }} {{ 'привет МИР' | title }} {{ 'नमस्ते 你好 😀 abc' | upper }})J"),
      "ÀÉÎÕÜ ÀÉÎÕÜ āăą ΑΒΓ ΑΒΓ Привет Мир नमस्ते 你好 😀 ABC");
}

TEST(JinjaFilters, IntAndFloatConvertWithDefaults) {
  EXPECT_EQ(
      render(
          R"J({{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 1 | float }} {{ -3 | abs }})J"),
      "42 4 0 7 3 2.5 1.0 3");
}

TEST(JinjaFilters, SelectattrRejectattrAndMap) {
  const char* vars =
      R"({"ms": [{"role": "user", "c": "a"}, {"role": "assistant", "c": "b"}, {"role": "user", "c": "c"}]})";
  EXPECT_EQ(
      render(
          R"J({{ ms | selectattr('role', 'equalto', 'user') | map(attribute='c') | join }} {{ ms | rejectattr('role', 'eq', 'user') | map(attribute='c') | list }} {{ ms | map(attribute='role') | unique | list }} {{ ms | selectattr('c') | list | length }})J",
          vars),
      "ac ['b'] ['user', 'assistant'] 3");
  EXPECT_EQ(
      render(
          R"J({{ [1, 2, 3, 4] | select('even') | list }} {{ [1, 2, 3] | reject('odd') | list }} {{ [' a', 'b '] | map('trim') | list }} {{ ['x', 'y'] | map('upper') | join('-') }} {{ ms | map(attribute='missing', default='?') | join }})J",
          vars),
      "[2, 4] [2] ['a', 'b'] X-Y ???");
}

TEST(JinjaFilters, GeneratorFiltersAreAlwaysTrueAndRunOnce) {
  // select, reject, selectattr, rejectattr, map, unique and items are generators in jinja2
  EXPECT_EQ(
      render(
          R"J({{ 'yes' if [] | select('odd') else 'no' }} {{ 'yes' if [] | list else 'no' }} {% set g = [1, 2] | select %}{{ g | list }}{{ g | list }} {{ none | selectattr('x') | list }} {{ 0 | map('upper') | list }})J"),
      "yes no [1, 2][] [] []");
  EXPECT_EQ(
      render(
          R"J({{ {'a': 1}.items() }} {{ {'a': 1}.keys() }} {{ {'a': [2]}.values() }} {{ range(3) | list }} {{ 'x' in (['x'] | select) }} [{{ ([1] | select)[0] }}])J"),
      "dict_items([('a', 1)]) dict_keys(['a']) dict_values([[2]]) [0, 1, 2] True []");
  // printing one shows a Python object address: refused; len() of one fails in Python too
  EXPECT_EQ(error_of("{{ [1] | select }}").kind, TemplateError::Kind::unsupported);
  EXPECT_EQ(error_of("{{ range(2) }}").kind, TemplateError::Kind::unsupported);
  EXPECT_EQ(error_of("{{ [1] | map('string') | length }}").kind, TemplateError::Kind::render);
  // an error inside a generator shows when it is used, not when it is only tested
  EXPECT_EQ(render(R"J({{ 'made' if 5 | select else 'no' }})J"), "made");
  EXPECT_EQ(error_of("{{ 5 | select | list }}").kind, TemplateError::Kind::render);
}

TEST(JinjaFilters, ItemsAndDictsort) {
  EXPECT_EQ(
      render(
          R"J({{ {'b': 1, 'A': 2} | items | list }} {{ {'b': 1, 'A': 2} | dictsort }} {{ missing | items | list }})J"),
      "[('b', 1), ('A', 2)] [('A', 2), ('b', 1)] []");
}

TEST(JinjaFilters, IndentAndWordcount) {
  EXPECT_EQ(
      render(
          R"J({{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ ' one  two three ' | wordcount }})J"),
      "a\n  b\n\n  c|  a\n  b|3");
}

TEST(JinjaFilters, TojsonIsTransformersJsonDumps) {
  const char* vars =
      R"({"v": {"s": "é \"q\" \\ \n\u0001\u007f 😀", "n": null, "b": true, "i": -3, "f": 0.1, "e": [], "o": {}, "l": [1, [2, {"k": 1.5e300}]]}})";
  EXPECT_EQ(
      render(R"J({{ v | tojson }})J", vars),
      "{\"s\": \"\xC3\xA9 \\\"q\\\" \\\\ \\n\\u0001\x7F \xF0\x9F\x98\x80\", \"n\": null, \"b\": "
      "true, \"i\": -3, \"f\": 0.1, \"e\": [], \"o\": {}, \"l\": [1, [2, {\"k\": 1.5e+300}]]}");
  EXPECT_EQ(render(R"J({{ {'b': [1, {}], 'a': 'x'} | tojson(indent=2) }})J"),
            "{\n  \"b\": [\n    1,\n    {}\n  ],\n  \"a\": \"x\"\n}");
  EXPECT_EQ(
      render(
          R"J({{ {'b': 1, 'a': 'é'} | tojson(sort_keys=true, separators=(',', ':')) }} {{ 'é😀' | tojson(ensure_ascii=true) }} {{ [1, 2] | tojson(indent='\t') }})J"),
      "{\"a\":\"\xC3\xA9\",\"b\":1} \"\\u00e9\\ud83d\\ude00\" [\n\t1,\n\t2\n]");
}

// ---- tests ----

TEST(JinjaTests, TypeTests) {
  const char* vars =
      R"({"s": "x", "l": [1], "d": {"a": 1}, "i": 3, "f": 1.5, "n": null, "b": true})";
  EXPECT_EQ(
      render(
          R"J({{ s is string }}{{ l is string }} {{ d is mapping }}{{ l is mapping }} {{ l is iterable }}{{ s is iterable }}{{ i is iterable }} {{ l is sequence }}{{ d is sequence }} {{ i is number }}{{ f is number }}{{ b is number }}{{ s is number }} {{ i is integer }}{{ f is float }} {{ n is none }}{{ missing is none }} {{ b is boolean }}{{ b is true }}{{ b is false }}{{ 1 is true }})J",
          vars),
      "TrueFalse TrueFalse TrueTrueFalse TrueTrue TrueTrueTrueFalse TrueTrue TrueFalse "
      "TrueTrueFalseFalse");
  EXPECT_EQ(
      render(
          R"J({{ missing is defined }}{{ missing is undefined }}{{ s is defined }} {{ s is not none }} {{ 4 is even }}{{ 4 is odd }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(2) }} {{ 2 is in [1, 2] }} {{ 'a' is eq 'a' }}{{ 3 is gt 2 }}{{ 3 is lt 2 }} {{ 'ab' is lower }}{{ 'AB' is upper }} {{ range is callable }} {{ none is sameas none }})J",
          vars),
      "FalseTrueTrue True TrueFalseTrueFalse True TrueTrueFalse TrueTrue True True");
}

TEST(JinjaTests, OddAndEvenTakeFloatsAndSequenceExcludesGenerators) {
  EXPECT_EQ(
      render(
          R"J({{ 1.5 is odd }}{{ 3.0 is odd }}{{ 4.0 is even }}{{ true is odd }} {{ [1] | select is sequence }}{{ range(2) is sequence }})J"),
      "FalseTrueTrueTrue FalseTrue");
}

// ---- methods ----

TEST(JinjaMethods, StringMethods) {
  EXPECT_EQ(
      render(
          R"J([{{ '  x  '.strip() }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}][{{ '--x--'.strip('-') }}] {{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }} {{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'Ab'.upper() }}{{ 'Ab'.lower() }} {{ "hello wORLD o'neil".title() }} {{ 'aXbX'.replace('X', '-') }} {{ 'abcb'.find('b') }} {{ 'abcb'.count('b') }} {{ '-'.join(['a', 'b']) }})J"),
      "[x][x  ][  x][x] TrueTrueTrue ['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ABab Hello World "
      "O'Neil a-b- 1 2 a-b");
  EXPECT_EQ(render(R"J({{ content.split('</think>')[-1].lstrip('\n') }})J",
                   R"({"content": "<think>hmm</think>\n\nanswer"})"),
            "answer");
}

TEST(JinjaMethods, DictMethods) {
  const char* vars = R"({"d": {"a": 1, "b": [2]}})";
  EXPECT_EQ(
      render(
          R"J({{ d.get('a') }} {{ d.get('x') }} {{ d.get('x', 'dflt') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }})J",
          vars),
      "1 None dflt ['a', 'b'] [1, [2]] [('a', 1), ('b', [2])]");
}

// ---- globals ----

TEST(JinjaGlobals, RaiseExceptionCarriesTheTemplatesMessage) {
  TemplateError e =
      error_of(R"J(before{{ raise_exception('Roles must alternate: ' ~ n) }})J", R"({"n": 3})");
  EXPECT_EQ(e.kind, TemplateError::Kind::raised);
  EXPECT_EQ(e.message, "Roles must alternate: 3");
  EXPECT_EQ(e.line, 1);
}

TEST(JinjaGlobals, StrftimeNowFormatsTheGivenTime) {
  EXPECT_EQ(
      render(R"J({{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B') }})J"),
      "14 Mar 2025|2025-03-14 15:09:26 Friday March");
}

TEST(JinjaGlobals, RangeDictAndNamespace) {
  EXPECT_EQ(
      render(
          R"J({{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }} {{ dict(a=1, b='x') }} {{ namespace(a=1).a }})J"),
      "[0, 1, 2] [1, 3, 5] [3, 2, 1] {'a': 1, 'b': 'x'} 1");
}

TEST(JinjaGlobals, VariablesShadowGlobals) {
  EXPECT_EQ(render(R"J({{ range }})J", R"({"range": "mine"})"), "mine");
}

// ---- errors ----

TEST(JinjaErrors, UnsupportedConstructsAreNamedAtParseTime) {
  struct Case {
    const char* source;
    const char* names;
  };
  const Case cases[] = {
      {"{% include 'x.jinja' %}", "{% include %}"},
      {"{% extends 'base' %}", "{% extends %}"},
      {"{% import 'm' as m %}", "{% import %}"},
      {"{% call m() %}x{% endcall %}", "{% call %}"},
      {"{% filter upper %}x{% endfilter %}", "{% filter %}"},
      {"{% do x %}", "{% do %}"},
      {"{% for x in y recursive %}{% endfor %}", "recursive for loop"},
      {"{{ x | urlize }}", "'urlize' filter"},
      {"{{ x | groupby('a') }}", "'groupby' filter"},
      {"{{ x is escaped }}", "'escaped' test"},
      {"{{ f(*args) }}", "*args"},
      {"{{ '\\101' }}", "octal escape"},
  };
  for (const auto& c : cases) {
    auto parsed = JinjaTemplate::parse(c.source);
    ASSERT_FALSE(parsed.ok()) << c.source;
    EXPECT_EQ(parsed.error().kind, TemplateError::Kind::unsupported) << c.source;
    EXPECT_NE(parsed.error().message.find(c.names), std::string::npos)
        << c.source << ": " << parsed.error().message;
  }
}

TEST(JinjaErrors, UnsupportedConstructsSeenOnlyAtRenderTimeAreNamedThen) {
  struct Case {
    const char* source;
    const char* names;
  };
  const Case cases[] = {
      {"{{ '{} x'.format(1) }}", "str.format()"},
      {"{{ '%s x' % 1 }}", "printf-style"},
      {"{{ d.items }}", "dict method 'items' used as a value"},
      {"{{ 'x'.zfill(3) }}", "string method 'zfill'"},
      {"{{ cycler(1, 2) }}", "cycler()"},
      {"{{ [1] | map('center') | list }}", "map with the filter 'center'"},
      {"{{ 'Straße' | upper }}", "U+00DF"},
      {"{{ 'ΟΔΟΣ'.lower() }}", "U+03A3"},
      {"{{ 2 ** 64 }}", "beyond 64 bits"},
      {"{{ 9223372036854775807 + 1 }}", "beyond 64 bits"},
  };
  for (const auto& c : cases) {
    TemplateError e = error_of(c.source, R"({"d": {"a": 1}})");
    EXPECT_EQ(e.kind, TemplateError::Kind::unsupported) << c.source << ": " << e.message;
    EXPECT_NE(e.message.find(c.names), std::string::npos) << c.source << ": " << e.message;
  }
}

TEST(JinjaErrors, SyntaxErrorsCarryTheirLine) {
  struct Case {
    const char* source;
    int line;
  };
  const Case cases[] = {
      {"a\n{% if x %}\nb", 3},
      {"{% for x in y %}{% endif %}", 1},
      {"x\n\n{% frobnicate %}", 3},
      {"{{ 1 + }}", 1},
      {"{{ x | nosuchfilter }}", 1},
      {"{{ x is nosuchtest }}", 1},
      {"{% break %}", 1},
      {"{{ 'unterminated }}", 1},
      {"{# never closed", 1},
      {"{{ x ", 1},
  };
  for (const auto& c : cases) {
    auto parsed = JinjaTemplate::parse(c.source);
    ASSERT_FALSE(parsed.ok()) << c.source;
    EXPECT_EQ(parsed.error().kind, TemplateError::Kind::syntax) << c.source;
    EXPECT_EQ(parsed.error().line, c.line) << c.source << ": " << parsed.error().message;
  }
}

TEST(JinjaErrors, RuntimeErrorsThatJinjaAlsoRaises) {
  const char* cases[] = {
      "{{ missing.attr }}",  // attribute of an undefined value
      "{{ missing['k'] }}",  // item of an undefined value
      "{{ 'a' + 1 }}",       // str + int
      "{{ 1 + missing }}",   // arithmetic on undefined
      "{{ 1 // 0 }}",        // division by zero
      "{{ 1 < 'a' }}",       // ordering across types
      "{% for x in 3 %}{% endfor %}",
      "{{ none | length }}",
      "{{ missing | tojson }}",
      "{{ missing | int }}",   // int(Undefined) raises
      "{{ {} in {'a': 1} }}",  // unhashable type
      "{{ [1].append(2) }}",   // the sandbox is immutable
      "{% set a, b = [1] %}",
      "{% set x = 1 %}{% set x.y = 2 %}",
      "{{ undefined_fn() }}",
  };
  for (const char* source : cases) {
    TemplateError e = error_of(source);
    EXPECT_EQ(e.kind, TemplateError::Kind::render) << source << ": " << e.message;
    EXPECT_EQ(e.message.find("<no error>"), std::string::npos) << source;
  }
}

TEST(JinjaErrors, EndlessMacroRecursionIsAnErrorNotACrash) {
  TemplateError e = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_EQ(e.kind, TemplateError::Kind::render);
  EXPECT_NE(e.message.find("recursion"), std::string::npos) << e.message;
  // and a bounded recursion works
  EXPECT_EQ(render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
                   "{{ f(5) }}"),
            "54321");
}

TEST(JinjaErrors, DeepNestingIsRefusedAtParseTime) {
  std::string deep_parens = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_EQ(error_of(deep_parens).kind, TemplateError::Kind::syntax);
  std::string deep_ifs;
  for (int i = 0; i < 5000; ++i) deep_ifs += "{% if true %}";
  EXPECT_EQ(error_of(deep_ifs).kind, TemplateError::Kind::syntax);
  std::string nots = "{{ ";
  for (int i = 0; i < 51; ++i) nots += "not ";
  EXPECT_EQ(render(nots + "1 }}"), "False");  // 51 levels are fine
}

TEST(JinjaErrors, ARenderErrorReportsTheLineOfItsStatement) {
  TemplateError e = error_of("line one\n{% if true %}\n  {{ x.y }}\n{% endif %}");
  EXPECT_EQ(e.kind, TemplateError::Kind::render);
  EXPECT_EQ(e.line, 3);
  EXPECT_NE(e.message.find("'x' is undefined"), std::string::npos) << e.message;
}

// ---- the chat template entry point ----

TEST(JinjaChatTemplate, ApplyChatTemplatePassesTransformersVariables) {
  auto t = JinjaTemplate::parse(
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
      "{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|{{ eos_token }}|{{ custom }}");
  ASSERT_TRUE(t.ok());
  ChatTemplateInputs in;
  in.messages = ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  in.add_generation_prompt = true;
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.extra = ordered_json::parse(R"({"custom": 7})");
  auto out = apply_chat_template(*t, in);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, "<s>[user:hi]None|None|True|</s>|7");
}

TEST(JinjaChatTemplate, AnExtraKwargCannotReplaceANamedArgument) {
  auto t = JinjaTemplate::parse("x");
  ASSERT_TRUE(t.ok());
  ChatTemplateInputs in;
  in.extra = ordered_json::parse(R"({"messages": []})");
  auto out = apply_chat_template(*t, in);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("messages"), std::string::npos);
}

TEST(JinjaChatTemplate, ALongConversationRendersInLinearTime) {
  // 20000 messages through the loop that real templates use (a look-behind per message);
  // a quadratic engine would take minutes here.
  ordered_json messages = ordered_json::array();
  for (int i = 0; i < 20000; ++i)
    messages.push_back({{"role", i % 2 ? "assistant" : "user"}, {"content", "message text"}});
  auto t = JinjaTemplate::parse(
      "{% for m in messages %}{% if loop.index0 == 0 or messages[loop.index0 - 1].role != m.role "
      "%}<{{ m.role }}>{% endif %}{{ m.content | trim }}{% endfor %}");
  ASSERT_TRUE(t.ok());
  ChatTemplateInputs in;
  in.messages = messages;
  auto out = apply_chat_template(*t, in);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->size(), 10000 * (std::string("<user>message text<assistant>message text").size()));
}

}  // namespace
}  // namespace respawn
