#pragma once
// `respawn smoke`: runs a suite of requests (smoke_report.hpp) against a respawn server, either
// one it starts for itself (`respawn serve --port 0 ...`, reaped on every way out) or one given
// by --url, optionally with a fresh worker for every test, and writes the reports. Blocking,
// single-threaded, meant to be a process's whole job; not thread-safe.
#include <cstdint>
#include <string>
#include <vector>

#include "client/http_client.hpp"
#include "respawn/result.hpp"

namespace respawn {

struct SmokeOptions {
  std::string suite;  // JSON Lines file
  bool restart_per_test = false;
  std::string url;  // empty: start a server
  std::string report_dir = "smoke-report";
  std::uint32_t timeout_ms = 120000;    // per request, connect to last byte
  std::vector<std::string> serve_args;  // after `--`, for the server it starts
};

// Where a server listens (host without brackets, port, host_header(), url()).
using SmokeEndpoint = client::Endpoint;

// From "http://HOST:PORT[/]" (HOST may be a bracketed IPv6 address; PORT defaults to 80).
// Plain http only; the error is bad_input with a message for --url.
Result<SmokeEndpoint> parse_smoke_url(const std::string& url);

// Parses what follows `smoke`. Errors are bad_input with a message for stderr.
Result<SmokeOptions> parse_smoke_options(const std::vector<std::string>& args);
std::string smoke_help();

// The whole command: 0 all tests passed, 1 some failed, 2 usage, suite or startup error.
// `self_exe` is the respawn binary, run as `self_exe serve ...` when no --url is given.
int run_smoke(const std::vector<std::string>& args, const std::string& self_exe);

}  // namespace respawn
