#pragma once
// The pure half of `respawn smoke`: reading a suite (JSON Lines), judging one response against
// a test's checks, and writing the run's reports (report.json, report.md, junit.xml). No
// sockets or processes here, so all of it is unit-tested. Pure functions; thread-safe.
#include <filesystem>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"

namespace respawn {

// One line of a suite: the request to send and what its response must satisfy.
struct SmokeCase {
  std::string name;
  std::string method;  // an HTTP verb, upper case
  std::string path;    // the request target, starting with '/'
  std::string body;    // JSON text; empty = no body
  int expect_status = 200;
  std::optional<std::string> expect_contains;
  std::optional<double> max_latency_ms;
};

inline constexpr const char* kDefaultSmokePath = "/v2/models/demo/generate";

// Reads a whole suite. Blank lines and lines starting with '#' are skipped. Errors are
// bad_input and start with "line N: "; an empty suite is an error too.
Result<std::vector<SmokeCase>> parse_suite(std::istream& in);

// Why a response fails `test` (empty = it passed). status 0 means no response; `error` then
// says why and is the only failure reported.
std::vector<std::string> check_response(const SmokeCase& test, int status, const std::string& body,
                                        double latency_ms, const std::string& error = {});

// What running one test gave.
struct SmokeOutcome {
  std::string name;
  int status = 0;  // 0: no response
  double latency_ms = 0;
  long worker_pid = 0;  // X-Respawn-Worker-Pid, 0 when absent
  std::vector<std::string> failures;
  bool passed() const { return failures.empty(); }
};

// A whole run, as the reports describe it.
struct SmokeRun {
  std::string suite;  // the suite file's path
  std::string mode;   // "restart-per-test" | "cached"
  std::string url;    // the server the tests were sent to
  double duration_s = 0;
  std::vector<SmokeOutcome> outcomes;

  std::size_t passed() const;
  std::size_t failed() const { return outcomes.size() - passed(); }
  double success_rate() const;  // passed / total; 0 for an empty run
};

// Nearest-rank percentile (0 < p <= 100) of `values`; 0 for none.
double percentile(std::vector<double> values, double p);

nlohmann::json report_json(const SmokeRun& run);
std::string report_markdown(const SmokeRun& run);
std::string junit_xml(const SmokeRun& run);
// Escapes the five XML specials; drops control characters XML 1.0 cannot carry.
std::string xml_escape(std::string_view text);
// "smoke: N/M passed (success rate X%), report in DIR"
std::string summary_line(const SmokeRun& run, const std::string& report_dir);

// Writes report.json, report.md and junit.xml into `dir` (which must exist).
Result<bool> write_reports(const SmokeRun& run, const std::filesystem::path& dir);

}  // namespace respawn
