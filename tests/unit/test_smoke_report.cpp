// Tests for the smoke runner's pure parts: suite parsing, checks, reports
// (supervisor/smoke/smoke_report.hpp) and the command line (supervisor/smoke/smoke_runner.hpp).
#include "smoke/smoke_report.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "smoke/smoke_runner.hpp"

namespace respawn {
namespace {

using nlohmann::json;

Result<std::vector<SmokeCase>> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_suite(in);
}

void expect_suite_error(const std::string& text, const std::string& mentions) {
  auto r = parse(text);
  ASSERT_FALSE(r.ok()) << text << "\nwas accepted";
  EXPECT_EQ(r.error().kind, ErrorKind::bad_input);
  EXPECT_NE(r.error().message.find(mentions), std::string::npos)
      << "'" << r.error().message << "' does not mention '" << mentions << "'";
}

TEST(SmokeSuite, DefaultsForAGetAndAPost) {
  auto r = parse(
      "{\"name\": \"meta\", \"path\": \"/v2/models/demo\"}\n"
      "{\"name\": \"post\", \"body\": {\"a\": [1, 2]}}\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  const auto& get = (*r)[0];
  EXPECT_EQ(get.name, "meta");
  EXPECT_EQ(get.method, "GET");
  EXPECT_EQ(get.path, "/v2/models/demo");
  EXPECT_EQ(get.body, "");
  EXPECT_EQ(get.expect_status, 200);
  EXPECT_FALSE(get.expect_contains.has_value());
  EXPECT_FALSE(get.max_latency_ms.has_value());
  const auto& post = (*r)[1];
  EXPECT_EQ(post.method, "POST");
  EXPECT_EQ(post.path, "/v2/models/demo/generate");
  EXPECT_EQ(json::parse(post.body), json::parse(R"({"a": [1, 2]})"));
}

TEST(SmokeSuite, ChecksAndExplicitFields) {
  auto r = parse(R"({"name": "x", "method": "put", "path": "/p?q=1", "body": "text", )"
                 R"("expect_status": 404, "expect_contains": "nope", "max_latency_ms": 12.5})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& c = r->at(0);
  EXPECT_EQ(c.method, "PUT");
  EXPECT_EQ(c.path, "/p?q=1");
  EXPECT_EQ(c.body, "\"text\"");  // any JSON, sent as JSON text
  EXPECT_EQ(c.expect_status, 404);
  EXPECT_EQ(c.expect_contains.value_or(""), "nope");
  EXPECT_DOUBLE_EQ(c.max_latency_ms.value_or(0), 12.5);
}

TEST(SmokeSuite, TextInputShorthandBuildsAGenerateBody) {
  auto r = parse(R"({"name": "a", "text_input": "Hi", "parameters": {"max_tokens": 3}})"
                 "\n"
                 R"({"name": "b", "text_input": "Yo"})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)[0].method, "POST");
  EXPECT_EQ((*r)[0].path, "/v2/models/demo/generate");
  EXPECT_EQ(json::parse((*r)[0].body),
            json::parse(R"({"text_input": "Hi", "parameters": {"max_tokens": 3}})"));
  EXPECT_EQ(json::parse((*r)[1].body), json::parse(R"({"text_input": "Yo", "parameters": {}})"));
}

TEST(SmokeSuite, SkipsBlankAndCommentLinesAndCrlf) {
  auto r = parse("# a comment\n\n   \n  # indented comment\r\n{\"name\": \"only\"}\r\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, "only");
}

TEST(SmokeSuite, ErrorsNameTheLine) {
  expect_suite_error("# c\n{\"name\": \"a\"}\n{not json\n", "line 3: not valid JSON");
  expect_suite_error("\n[1, 2]\n", "line 2: each line must be a JSON object");
  expect_suite_error("{\"path\": \"/v2\"}\n", "line 1: 'name' is required");
  expect_suite_error("{\"name\": \"\"}\n", "line 1: 'name' is required");
  expect_suite_error("{\"name\": 3}\n", "line 1: 'name' is required");
  expect_suite_error("{\"name\": \"a\", \"expect_satus\": 200}",
                     "line 1: unknown key 'expect_satus'");
  expect_suite_error("{\"name\": \"a\", \"expect_status\": 2000}", "line 1: 'expect_status'");
  expect_suite_error("{\"name\": \"a\", \"expect_status\": \"200\"}", "'expect_status'");
  expect_suite_error("{\"name\": \"a\", \"expect_status\": 200.5}", "'expect_status'");
  expect_suite_error("{\"name\": \"a\", \"expect_contains\": 1}", "'expect_contains'");
  expect_suite_error("{\"name\": \"a\", \"max_latency_ms\": -1}", "'max_latency_ms'");
  expect_suite_error("{\"name\": \"a\", \"path\": \"v2\"}", "'path'");
  expect_suite_error("{\"name\": \"a\", \"path\": \"/a b\"}", "'path'");
  expect_suite_error("{\"name\": \"a\", \"method\": \"G T\"}", "'method'");
  expect_suite_error("{\"name\": \"a\", \"text_input\": 5}", "'text_input'");
  expect_suite_error("{\"name\": \"a\", \"text_input\": \"x\", \"parameters\": []}",
                     "'parameters'");
  expect_suite_error("{\"name\": \"a\", \"parameters\": {}}", "'parameters'");
  expect_suite_error("{\"name\": \"a\", \"text_input\": \"x\", \"body\": {}}", "not both");
}

TEST(SmokeSuite, RejectsDuplicateNamesAndEmptySuites) {
  expect_suite_error("{\"name\": \"a\"}\n{\"name\": \"b\"}\n\n{\"name\": \"a\"}\n",
                     "line 4: duplicate name 'a'");
  expect_suite_error("", "no tests");
  expect_suite_error("# only a comment\n\n", "no tests");
}

SmokeCase case_with_checks() {
  SmokeCase c;
  c.name = "t";
  c.expect_status = 200;
  c.expect_contains = "speaks";
  c.max_latency_ms = 100;
  return c;
}

TEST(SmokeChecks, PassAndEachFailure) {
  const auto c = case_with_checks();
  EXPECT_TRUE(check_response(c, 200, "it speaks HTTP", 99.0).empty());

  const auto status = check_response(c, 503, "{\"error\":\"busy\"} speaks", 10);
  ASSERT_EQ(status.size(), 1u);
  EXPECT_NE(status[0].find("status 503, expected 200"), std::string::npos) << status[0];
  EXPECT_NE(status[0].find("busy"), std::string::npos) << "the body explains the status";

  const auto contains = check_response(c, 200, "silence", 10);
  ASSERT_EQ(contains.size(), 1u);
  EXPECT_NE(contains[0].find("does not contain \"speaks\""), std::string::npos) << contains[0];

  const auto slow = check_response(c, 200, "speaks", 250.0);
  ASSERT_EQ(slow.size(), 1u);
  EXPECT_NE(slow[0].find("latency 250.0 ms"), std::string::npos) << slow[0];

  EXPECT_EQ(check_response(c, 500, "", 500).size(), 3u);
}

TEST(SmokeChecks, NoResponseIsOneFailureWithTheReason) {
  const auto f = check_response(case_with_checks(), 0, "", 1, "connect: Connection refused");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0], "no response: connect: Connection refused");
}

TEST(SmokeChecks, LongAndInvalidBodiesAreCutAndRepaired) {
  SmokeCase c;
  const auto f = check_response(c, 500, std::string(1000, 'x') + "\xff", 1);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_LT(f[0].size(), 300u);
  const auto bad = check_response(c, 500, "\xff\xfe", 1);
  EXPECT_EQ(bad[0].find('\xff'), std::string::npos) << "invalid UTF-8 must not reach reports";
}

SmokeRun sample_run() {
  SmokeRun run;
  run.suite = "suites/demo.jsonl";
  run.mode = "restart-per-test";
  run.url = "http://127.0.0.1:1234";
  run.duration_s = 2.5;
  run.outcomes = {{"a", 200, 10, 101, {}},
                  {"b <&> \"q\" 'x'", 500, 30, 102, {"status 500, expected 200: <oops & \"bye\">"}},
                  {"c", 200, 20, 101, {}},
                  {"d", 0, 1, 0, {"no response: connect: refused", "line1\nline2\x01"}}};
  return run;
}

TEST(SmokeReport, JsonSummarizesTheRun) {
  const auto j = report_json(sample_run());
  EXPECT_EQ(j["suite"], "suites/demo.jsonl");
  EXPECT_EQ(j["mode"], "restart-per-test");
  EXPECT_EQ(j["url"], "http://127.0.0.1:1234");
  EXPECT_EQ(j["total"], 4);
  EXPECT_EQ(j["passed"], 2);
  EXPECT_EQ(j["failed"], 2);
  EXPECT_DOUBLE_EQ(j["success_rate"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["duration_s"].get<double>(), 2.5);
  // Latency statistics cover answered requests only (10, 20, 30).
  EXPECT_DOUBLE_EQ(j["latency_ms"]["p50"].get<double>(), 20);
  EXPECT_DOUBLE_EQ(j["latency_ms"]["p90"].get<double>(), 30);
  EXPECT_DOUBLE_EQ(j["latency_ms"]["max"].get<double>(), 30);
  EXPECT_EQ(j["distinct_worker_pids"], 2);
  ASSERT_EQ(j["tests"].size(), 4u);
  EXPECT_EQ(j["tests"][0],
            json::parse(R"({"name":"a","status":200,"latency_ms":10.0,"worker_pid":101,)"
                        R"("passed":true,"failures":[]})"));
  EXPECT_EQ(j["tests"][3]["passed"], false);
  EXPECT_EQ(j["tests"][3]["failures"].size(), 2u);
}

TEST(SmokeReport, SuccessRateAndPercentiles) {
  SmokeRun run;
  EXPECT_EQ(run.success_rate(), 0.0);
  run.outcomes = {{"a", 200, 1, 0, {}}, {"b", 200, 1, 0, {}}, {"c", 200, 1, 0, {"x"}}};
  EXPECT_NEAR(run.success_rate(), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(percentile({}, 50), 0);
  EXPECT_EQ(percentile({5}, 90), 5);
  EXPECT_EQ(percentile({4, 1, 3, 2}, 50), 2);
  EXPECT_EQ(percentile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90), 9);
  EXPECT_EQ(percentile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 100), 10);
}

TEST(SmokeReport, XmlEscape) {
  EXPECT_EQ(xml_escape("a<b>&\"c\"'d'"), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
  EXPECT_EQ(xml_escape("x\ny\tz\x01\x1f"), "x&#10;y&#9;z");
  EXPECT_EQ(xml_escape("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(xml_escape("\xff"), "\xef\xbf\xbd");
}

TEST(SmokeReport, JunitCountsAndEscapes) {
  const auto xml = junit_xml(sample_run());
  EXPECT_EQ(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite ", 0), 0u) << xml;
  EXPECT_NE(xml.find("tests=\"4\" failures=\"2\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("time=\"2.500\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("<testcase classname=\"smoke\" name=\"a\" time=\"0.010\"/>"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("name=\"b &lt;&amp;&gt; &quot;q&quot; &apos;x&apos;\""), std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<failure message=\"status 500, expected 200: &lt;oops &amp; "
                     "&quot;bye&quot;&gt;\">"),
            std::string::npos)
      << xml;
  // Two failures: joined in the message; the control character is gone.
  EXPECT_NE(xml.find("message=\"no response: connect: refused; line1&#10;line2\""),
            std::string::npos)
      << xml;
  EXPECT_EQ(xml.find('\x01'), std::string::npos);
  EXPECT_EQ(xml.find("<oops"), std::string::npos) << "unescaped text";
  EXPECT_EQ(xml.find("<failure"), xml.find("<failure message=\"status"));
  EXPECT_EQ(std::count(xml.begin(), xml.end(), '<') - std::count(xml.begin(), xml.end(), '>'), 0);
}

TEST(SmokeReport, MarkdownTableAndSummaryLine) {
  const auto md = report_markdown(sample_run());
  EXPECT_NE(md.find("**2/4 passed** (success rate 50.0%)"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1 | a | 200 | 10.0 | 101 | pass |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2 | b &lt;&amp;&gt;"), std::string::npos) << md;  // no raw HTML
  EXPECT_EQ(md.find("line1\nline2"), std::string::npos) << "a newline would break the table";
  EXPECT_EQ(summary_line(sample_run(), "out"),
            "smoke: 2/4 passed (success rate 50.0%), report in out");
}

TEST(SmokeReport, WritesTheThreeFiles) {
  std::random_device rd;
  const auto dir =
      std::filesystem::temp_directory_path() / ("respawn-smoke-unit-" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  auto written = write_reports(sample_run(), dir);
  ASSERT_TRUE(written.ok()) << written.error().message;
  std::ifstream report(dir / "report.json");
  EXPECT_EQ(json::parse(report), report_json(sample_run()));
  EXPECT_TRUE(std::filesystem::file_size(dir / "report.md") > 0);
  EXPECT_TRUE(std::filesystem::file_size(dir / "junit.xml") > 0);
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(write_reports(sample_run(), dir / "missing").ok());
}

TEST(SmokeCommandLine, DefaultsAndServeArgs) {
  auto r = parse_smoke_options({"--suite", "s.jsonl", "--", "--model", "m.pt", "--suite", "x"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->suite, "s.jsonl");
  EXPECT_FALSE(r->restart_per_test);
  EXPECT_EQ(r->url, "");
  EXPECT_EQ(r->report_dir, "smoke-report");
  EXPECT_EQ(r->timeout_ms, 120000u);
  EXPECT_EQ(r->serve_args, (std::vector<std::string>{"--model", "m.pt", "--suite", "x"}));
}

TEST(SmokeCommandLine, AllFlagsAndErrors) {
  auto r = parse_smoke_options({"--restart-per-test", "--url", "http://127.0.0.1:8000/",
                                "--report-dir", "out", "--timeout-ms", "500", "--suite", "s"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->restart_per_test);
  EXPECT_EQ(r->report_dir, "out");
  EXPECT_EQ(r->timeout_ms, 500u);
  EXPECT_FALSE(parse_smoke_options({}).ok()) << "--suite is required";
  EXPECT_FALSE(parse_smoke_options({"--suite", "s", "--bogus"}).ok());
  EXPECT_FALSE(parse_smoke_options({"--suite", "s", "--timeout-ms", "0"}).ok());
  EXPECT_FALSE(parse_smoke_options({"--suite", "s", "--url", "https://h:1"}).ok());
  EXPECT_FALSE(parse_smoke_options({"--suite", "s", "--url", "http://h:1", "--", "--x"}).ok());
}

TEST(SmokeCommandLine, Urls) {
  auto v4 = parse_smoke_url("http://127.0.0.1:8000");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, "8000");
  EXPECT_EQ(v4->url(), "http://127.0.0.1:8000");
  auto v6 = parse_smoke_url("http://[::1]:9/");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->host_header(), "[::1]:9");
  auto named = parse_smoke_url("http://gpu-box");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->port, "80");
  for (const char* bad : {"127.0.0.1:8000", "http://", "http://h:", "http://h:0", "http://h:65536",
                          "http://h:80/path", "http://[::1", "http://u@h:1", "http://h:12a"}) {
    EXPECT_FALSE(parse_smoke_url(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace respawn
