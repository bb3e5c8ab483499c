// The Grafana dashboard we ship (deploy/grafana/respawn.json) against the server's real
// /metrics: every metric a panel queries must exist, so that renaming a metric (or adding a
// panel for one that does not exist) fails here instead of leaving an empty panel. Also the
// live gauges that the dashboard shows: worker and breaker state, policy limits, build info and
// the supervisor's process_* metrics.
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace respawn::test {
namespace {

const char* const kDashboard = RESPAWN_SOURCE_DIR "/deploy/grafana/respawn.json";

// The PromQL of every panel target (rows' nested panels too) and of the template variables.
void collect_queries(const nlohmann::json& panels, std::vector<std::string>& out) {
  if (!panels.is_array()) return;
  for (const auto& panel : panels) {
    if (panel.contains("targets") && panel["targets"].is_array()) {
      for (const auto& target : panel["targets"]) {
        if (target.contains("expr") && target["expr"].is_string()) out.push_back(target["expr"]);
      }
    }
    if (panel.contains("panels")) collect_queries(panel["panels"], out);
  }
}

std::vector<std::string> dashboard_queries(const nlohmann::json& dashboard) {
  std::vector<std::string> out;
  collect_queries(dashboard["panels"], out);
  for (const auto& variable : dashboard["templating"]["list"]) {
    const auto& query = variable["query"];
    if (query.is_string()) out.push_back(query);
    if (query.is_object() && query["query"].is_string()) out.push_back(query["query"]);
  }
  return out;
}

std::set<std::string> metric_names(const std::vector<std::string>& queries) {
  static const std::regex name(R"((respawn|process)_[a-z_]+)");
  std::set<std::string> out;
  for (const auto& q : queries) {
    for (std::sregex_iterator it(q.begin(), q.end(), name), end; it != end; ++it) {
      out.insert(it->str());
    }
  }
  return out;
}

// The families of a scrape (name -> type, from its # TYPE lines) and the names of its samples.
struct Scrape {
  std::map<std::string, std::string> families;
  std::set<std::string> samples;
};

Scrape parse_scrape(const std::string& text) {
  Scrape scrape;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream fields(line.substr(7));
      std::string name, type;
      fields >> name >> type;
      scrape.families[name] = type;
    } else if (!line.empty() && line[0] != '#') {
      scrape.samples.insert(line.substr(0, line.find_first_of("{ ")));
    }
  }
  return scrape;
}

// The names the scrape does not have: neither a family (HELP/TYPE) nor a sample; a
// histogram's _bucket, _sum and _count count as its family.
std::vector<std::string> missing_from(const Scrape& scrape, const std::set<std::string>& names) {
  std::vector<std::string> missing;
  for (const auto& name : names) {
    if (scrape.families.count(name) || scrape.samples.count(name)) continue;
    bool found = false;
    for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        const auto family = scrape.families.find(name.substr(0, name.size() - suffix.size()));
        found = family != scrape.families.end() && family->second == "histogram";
      }
    }
    if (!found) missing.push_back(name);
  }
  return missing;
}

TEST(Dashboard, EveryMetricItQueriesIsServed) {
  const auto dashboard = nlohmann::json::parse(read_file(kDashboard), nullptr, false);
  ASSERT_TRUE(dashboard.is_object()) << kDashboard << " is not JSON";
  // Imported with the datasource chosen at import: every panel names it as ${DS_PROMETHEUS}.
  ASSERT_EQ(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
  const auto names = metric_names(dashboard_queries(dashboard));
  ASSERT_GE(names.size(), 20u) << "the dashboard's queries were not found";

  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready());
  // One generation, so that the per-route series (queue wait, inference) exist.
  ASSERT_EQ(server.post("/v2/models/demo/generate", R"({"text_input":"hello"})").status, 200);
  const auto res = server.get("/metrics");
  ASSERT_EQ(res.status, 200);
  const auto scrape = parse_scrape(res.body);

  const auto missing = missing_from(scrape, names);
  std::string list;
  for (const auto& name : missing) list += " " + name;
  EXPECT_TRUE(missing.empty()) << "queried by " << kDashboard << " but not in /metrics:" << list;
  // The check itself: a name the server does not serve is reported.
  EXPECT_EQ(missing_from(scrape, {"respawn_no_such_metric_total", "respawn_ready_bucket"}),
            (std::vector<std::string>{"respawn_no_such_metric_total", "respawn_ready_bucket"}));
}

TEST(DashboardMetrics, LiveGaugesFollowTheServer) {
  Server server(fake_args());
  ASSERT_TRUE(server.wait_ready());
  ASSERT_EQ(server.post("/v2/models/demo/generate", R"({"text_input":"hello"})").status, 200);
  EXPECT_EQ(server.metric(R"(respawn_worker_state{state="ready"})"), 1);
  EXPECT_EQ(server.metric(R"(respawn_worker_state{state="spawning"})"), 0);
  EXPECT_GE(server.metric("respawn_worker_uptime_seconds"), 0);
  EXPECT_EQ(server.metric(R"(respawn_breaker_state{state="closed"})"), 1);
  EXPECT_EQ(server.metric(R"(respawn_breaker_state{state="open"})"), 0);
  // The fake worker reports no libtorch_version.
  EXPECT_EQ(server.metric(R"(respawn_build_info{version="0.1.0",libtorch="unknown"})"), 1);
  EXPECT_EQ(server.metric(R"(respawn_queue_wait_seconds_count{route="generate"})"), 1);
  EXPECT_EQ(server.metric(R"(respawn_inference_seconds_count{route="generate"})"), 1);
  EXPECT_EQ(server.metric(R"(respawn_queue_wait_seconds_count{route="infer"})"), -1);
  EXPECT_GT(server.metric("process_resident_memory_bytes"), 0);
  EXPECT_GT(server.metric("process_open_fds"), 0);
  EXPECT_GE(server.metric("process_max_fds"), server.metric("process_open_fds"));
  EXPECT_GT(server.metric("process_start_time_seconds"), 1e9);

  // PATCH /admin/policy: the next scrape shows the new limits.
  EXPECT_EQ(server.metric(R"(respawn_policy_limit{knob="max_requests"})"), 0);
  const auto patch = http_request(server.port(), "PATCH", "/admin/policy",
                                  R"({"max_requests": 50, "max_worker_rss_mb": 4096})");
  ASSERT_EQ(patch.status, 200) << patch.body;
  EXPECT_EQ(server.metric(R"(respawn_policy_limit{knob="max_requests"})"), 50);
  EXPECT_EQ(server.metric(R"(respawn_policy_limit{knob="max_worker_rss_mb"})"), 4096);
}

}  // namespace
}  // namespace respawn::test
