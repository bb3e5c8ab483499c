#include "smoke/smoke_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "respawn/utf8.hpp"

namespace respawn {
namespace {

using nlohmann::json;

// A typo in a check's name ("expect_satus") must not silently turn the check off, so every
// key is either known or an error.
const std::set<std::string> kKnownKeys = {
    "name",       "path",          "method",          "body",          "text_input",
    "parameters", "expect_status", "expect_contains", "max_latency_ms"};

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

double round3(double value) {
  return std::round(value * 1000.0) / 1000.0;
}

Error bad(std::string message) {
  return make_error(ErrorKind::bad_input, std::move(message));
}

std::optional<Error> check_keys(const json& line) {
  for (const auto& [key, value] : line.items()) {
    if (kKnownKeys.count(key) == 0) return bad("unknown key '" + key + "'");
  }
  return std::nullopt;
}

// The body as JSON text: `body` verbatim, or the generate shorthand built from `text_input`.
Result<std::string> case_body(const json& line) {
  const bool has_text = line.contains("text_input");
  if (line.contains("body")) {
    if (has_text) return bad("give either 'body' or 'text_input', not both");
    return line["body"].dump();
  }
  if (line.contains("parameters") && !has_text)
    return bad("'parameters' only goes with 'text_input'");
  if (!has_text) return std::string();
  if (!line["text_input"].is_string()) return bad("'text_input' must be a string");
  const json params = line.value("parameters", json::object());
  if (!params.is_object()) return bad("'parameters' must be an object");
  return json{{"text_input", line["text_input"]}, {"parameters", params}}.dump();
}

Result<std::string> case_method(const json& line, bool has_body) {
  if (!line.contains("method")) return std::string(has_body ? "POST" : "GET");
  if (!line["method"].is_string()) return bad("'method' must be a string");
  std::string method = line["method"];
  for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const bool letters =
      std::all_of(method.begin(), method.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  if (method.empty() || !letters) return bad("'method' must be an HTTP verb");
  return method;
}

Result<std::string> case_path(const json& line) {
  if (!line.contains("path")) return std::string(kDefaultSmokePath);
  const auto& path = line["path"];
  if (!path.is_string() || path.get<std::string>().rfind('/', 0) != 0)
    return bad("'path' must be a string starting with '/'");
  const std::string p = path;
  // It goes into the request line verbatim, where spaces and controls would break it.
  if (std::any_of(p.begin(), p.end(), [](char c) { return static_cast<unsigned char>(c) <= 32; }))
    return bad("'path' must not contain spaces or control characters");
  return p;
}

std::optional<Error> read_checks(const json& line, SmokeCase& c) {
  if (line.contains("expect_status")) {
    const auto& s = line["expect_status"];
    if (!s.is_number_integer() || s.get<long>() < 100 || s.get<long>() > 599)
      return bad("'expect_status' must be an integer HTTP status (100-599)");
    c.expect_status = s.get<int>();
  }
  if (line.contains("expect_contains")) {
    if (!line["expect_contains"].is_string()) return bad("'expect_contains' must be a string");
    c.expect_contains = line["expect_contains"].get<std::string>();
  }
  if (line.contains("max_latency_ms")) {
    const auto& m = line["max_latency_ms"];
    if (!m.is_number() || m.get<double>() <= 0)
      return bad("'max_latency_ms' must be a positive number");
    c.max_latency_ms = m.get<double>();
  }
  return std::nullopt;
}

Result<SmokeCase> parse_case(const json& line) {
  if (!line.is_object()) return bad("each line must be a JSON object");
  if (auto e = check_keys(line)) return *e;
  SmokeCase c;
  if (!line.contains("name") || !line["name"].is_string() ||
      line["name"].get<std::string>().empty())
    return bad("'name' is required and must be a non-empty string");
  c.name = line["name"];
  auto body = case_body(line);
  if (!body) return body.error();
  c.body = *body;
  auto method = case_method(line, !c.body.empty());
  if (!method) return method.error();
  c.method = *method;
  auto path = case_path(line);
  if (!path) return path.error();
  c.path = *path;
  if (auto e = read_checks(line, c)) return *e;
  return c;
}

bool skipped_line(const std::string& line) {
  const auto first = line.find_first_not_of(" \t\r");
  return first == std::string::npos || line[first] == '#';
}

// Long bodies make unreadable reports; the start of one is what says what went wrong.
std::string snippet(const std::string& body) {
  constexpr std::size_t kMax = 200;
  if (body.size() <= kMax) return sanitize_utf8(body);
  return sanitize_utf8(body.substr(0, kMax)) + "...";
}

// `text` with each character replaced by what `replace` gives for it: a string, "" to drop
// it, or nullptr to keep it.
template <typename Replace>
std::string escape_each(std::string_view text, Replace replace) {
  std::string out;
  for (const char c : text) {
    const char* replacement = replace(c);
    if (replacement) {
      out += replacement;
    } else {
      out += c;
    }
  }
  return out;
}

// The characters both Markdown (HTML) and XML write as entities.
const char* markup_entity(char c) {
  switch (c) {
    case '&':
      return "&amp;";
    case '<':
      return "&lt;";
    case '>':
      return "&gt;";
    default:
      return nullptr;
  }
}

std::string markdown_cell(const std::string& text) {
  return escape_each(text, [](char c) -> const char* {
    if (c == '|') return "\\|";
    if (c == '\n' || c == '\r') return " ";  // a newline would end the table row
    return markup_entity(c);
  });
}

std::string joined(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// Latency statistics describe answered requests; a refused connection has no latency to speak of.
std::vector<double> answered_latencies(const SmokeRun& run) {
  std::vector<double> values;
  for (const auto& o : run.outcomes) {
    if (o.status != 0) values.push_back(o.latency_ms);
  }
  return values;
}

std::size_t distinct_pids(const SmokeRun& run) {
  std::set<long> pids;
  for (const auto& o : run.outcomes) {
    if (o.worker_pid != 0) pids.insert(o.worker_pid);
  }
  return pids.size();
}

bool write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  return !out.fail();
}

}  // namespace

Result<std::vector<SmokeCase>> parse_suite(std::istream& in) {
  std::vector<SmokeCase> cases;
  std::set<std::string> names;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (skipped_line(line)) continue;
    const auto where = "line " + std::to_string(number) + ": ";
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) return bad(where + "not valid JSON");
    auto c = parse_case(j);
    if (!c) return bad(where + c.error().message);
    if (!names.insert(c->name).second) return bad(where + "duplicate name '" + c->name + "'");
    cases.push_back(std::move(*c));
  }
  if (cases.empty()) return bad("the suite has no tests");
  return cases;
}

std::vector<std::string> check_response(const SmokeCase& test, int status, const std::string& body,
                                        double latency_ms, const std::string& error) {
  if (status == 0) return {error.empty() ? "no response" : "no response: " + error};
  std::vector<std::string> failures;
  if (status != test.expect_status) {
    failures.push_back("status " + std::to_string(status) + ", expected " +
                       std::to_string(test.expect_status) +
                       (body.empty() ? "" : ": " + snippet(body)));
  }
  if (test.expect_contains && body.find(*test.expect_contains) == std::string::npos) {
    failures.push_back("response does not contain \"" + *test.expect_contains + "\"");
  }
  if (test.max_latency_ms && latency_ms > *test.max_latency_ms) {
    failures.push_back("latency " + fixed(latency_ms, 1) + " ms over the limit of " +
                       fixed(*test.max_latency_ms, 1) + " ms");
  }
  return failures;
}

std::size_t SmokeRun::passed() const {
  return static_cast<std::size_t>(
      std::count_if(outcomes.begin(), outcomes.end(), [](const auto& o) { return o.passed(); }));
}

double SmokeRun::success_rate() const {
  return outcomes.empty() ? 0.0 : static_cast<double>(passed()) / outcomes.size();
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * values.size()));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

nlohmann::json report_json(const SmokeRun& run) {
  json tests = json::array();
  for (const auto& o : run.outcomes) {
    tests.push_back({{"name", o.name},
                     {"status", o.status},
                     {"latency_ms", round3(o.latency_ms)},
                     {"worker_pid", o.worker_pid},
                     {"passed", o.passed()},
                     {"failures", o.failures}});
  }
  const auto latencies = answered_latencies(run);
  return {{"suite", run.suite},
          {"mode", run.mode},
          {"url", run.url},
          {"total", run.outcomes.size()},
          {"passed", run.passed()},
          {"failed", run.failed()},
          {"success_rate", run.success_rate()},
          {"duration_s", round3(run.duration_s)},
          {"latency_ms",
           {{"p50", round3(percentile(latencies, 50))},
            {"p90", round3(percentile(latencies, 90))},
            {"max", round3(percentile(latencies, 100))}}},
          {"distinct_worker_pids", distinct_pids(run)},
          {"tests", std::move(tests)}};
}

std::string report_markdown(const SmokeRun& run) {
  const auto lat = answered_latencies(run);
  std::string md = "# Smoke report\n\n";
  md += "- suite: " + markdown_cell(run.suite) + "\n";
  md += "- mode: " + run.mode + ", server " + markdown_cell(run.url) + "\n";
  md += "- result: **" + std::to_string(run.passed()) + "/" + std::to_string(run.outcomes.size()) +
        " passed** (success rate " + fixed(run.success_rate() * 100, 1) + "%) in " +
        fixed(run.duration_s, 1) + " s\n";
  md += "- latency: p50 " + fixed(percentile(lat, 50), 1) + " ms, p90 " +
        fixed(percentile(lat, 90), 1) + " ms, max " + fixed(percentile(lat, 100), 1) + " ms\n";
  md += "- distinct worker pids: " + std::to_string(distinct_pids(run)) + "\n\n";
  md += "| # | test | status | latency (ms) | worker pid | result |\n";
  md += "| ---: | --- | ---: | ---: | ---: | --- |\n";
  for (std::size_t i = 0; i < run.outcomes.size(); ++i) {
    const auto& o = run.outcomes[i];
    const auto result = o.passed() ? std::string("pass") : "FAIL: " + joined(o.failures, "; ");
    md += "| " + std::to_string(i + 1) + " | " + markdown_cell(o.name) + " | " +
          std::to_string(o.status) + " | " + fixed(o.latency_ms, 1) + " | " +
          std::to_string(o.worker_pid) + " | " + markdown_cell(result) + " |\n";
  }
  return md;
}

std::string xml_escape(std::string_view text) {
  return escape_each(sanitize_utf8(text), [](char c) -> const char* {
    switch (c) {
      case '"':
        return "&quot;";
      case '\'':
        return "&apos;";
      // Character references keep newlines and tabs intact inside attribute values too.
      case '\n':
        return "&#10;";
      case '\r':
        return "&#13;";
      case '\t':
        return "&#9;";
      default:
        if (static_cast<unsigned char>(c) < 0x20) return "";  // other controls are not XML
        return markup_entity(c);
    }
  });
}

std::string junit_xml(const SmokeRun& run) {
  const auto suite_name = "smoke " + std::filesystem::path(run.suite).filename().string();
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  xml += "<testsuite name=\"" + xml_escape(suite_name) + "\" tests=\"" +
         std::to_string(run.outcomes.size()) + "\" failures=\"" + std::to_string(run.failed()) +
         "\" errors=\"0\" skipped=\"0\" time=\"" + fixed(run.duration_s, 3) + "\">\n";
  for (const auto& o : run.outcomes) {
    xml += "  <testcase classname=\"smoke\" name=\"" + xml_escape(o.name) + "\" time=\"" +
           fixed(o.latency_ms / 1000.0, 3) + "\"";
    if (o.passed()) {
      xml += "/>\n";
      continue;
    }
    const auto message = joined(o.failures, "; ");
    xml += ">\n    <failure message=\"" + xml_escape(message) + "\">" +
           xml_escape(joined(o.failures, "\n")) + "</failure>\n  </testcase>\n";
  }
  return xml + "</testsuite>\n";
}

std::string summary_line(const SmokeRun& run, const std::string& report_dir) {
  return "smoke: " + std::to_string(run.passed()) + "/" + std::to_string(run.outcomes.size()) +
         " passed (success rate " + fixed(run.success_rate() * 100, 1) + "%), report in " +
         report_dir;
}

Result<bool> write_reports(const SmokeRun& run, const std::filesystem::path& dir) {
  // Names and failures are valid UTF-8 already; replacing keeps a bug from losing the report.
  const auto json_text =
      report_json(run).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  const std::pair<const char*, std::string> files[] = {{"report.json", json_text},
                                                       {"report.md", report_markdown(run)},
                                                       {"junit.xml", junit_xml(run)}};
  for (const auto& [name, content] : files) {
    if (!write_file(dir / name, content)) {
      return make_error(ErrorKind::internal, "cannot write " + (dir / name).string());
    }
  }
  return true;
}

}  // namespace respawn
