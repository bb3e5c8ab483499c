// Tests for the Prometheus metrics (supervisor/metrics.hpp).
#include "metrics.hpp"

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace respawn {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

// The value of the sample whose name-and-labels part is exactly `series`; NaN when absent.
double value_of(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.size() > series.size() && l.compare(0, series.size(), series) == 0 &&
        l[series.size()] == ' ') {
      return std::strtod(l.c_str() + series.size() + 1, nullptr);
    }
  }
  return std::nan("");
}

// The cumulative count of the bucket whose le label reads as `le` (whatever its spelling:
// 0.0005 and 5e-04 are the same bound); NaN when absent. `labels` go before le.
double bucket_at(const std::string& text, const std::string& name, double le,
                 const std::string& labels = "") {
  const std::string prefix = name + "_bucket{" + labels + (labels.empty() ? "" : ",") + "le=\"";
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind(prefix, 0) != 0) continue;
    const std::string bound = l.substr(prefix.size(), l.find('"', prefix.size()) - prefix.size());
    const double b = bound == "+Inf" ? HUGE_VAL : std::strtod(bound.c_str(), nullptr);
    if (b == le) return std::strtod(l.c_str() + l.rfind(' ') + 1, nullptr);
  }
  return std::nan("");
}

std::vector<double> bucket_values(const std::string& text, const std::string& prefix) {
  std::vector<double> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind(prefix, 0) == 0) out.push_back(std::strtod(l.c_str() + l.rfind(' ') + 1, nullptr));
  }
  return out;
}

TEST(Metrics, HelpAndTypeLines) {
  const std::string text = Metrics().render();
  const std::pair<const char*, const char*> families[] = {
      {"respawn_requests_total", "counter"},
      {"respawn_request_duration_seconds", "histogram"},
      {"respawn_queue_wait_seconds", "histogram"},
      {"respawn_inference_seconds", "histogram"},
      {"respawn_queue_depth", "gauge"},
      {"respawn_requests_inflight", "gauge"},
      {"respawn_ready", "gauge"},
      {"respawn_worker_starts_total", "counter"},
      {"respawn_worker_recycles_total", "counter"},
      {"respawn_worker_time_to_ready_seconds", "histogram"},
      {"respawn_worker_rss_bytes", "gauge"},
  };
  for (const auto& [name, type] : families) {
    EXPECT_TRUE(has_line(text, std::string("# TYPE ") + name + " " + type)) << name;
    EXPECT_NE(text.find(std::string("# HELP ") + name + " "), std::string::npos) << name;
  }
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
}

TEST(Metrics, RequestsCountedByRouteAndCode) {
  Metrics m;
  m.on_request("infer", 200, 0.01);
  m.on_request("infer", 200, 0.02);
  m.on_request("infer", 503, 0.001);
  m.on_request("generate", 200, 1.5);
  m.on_request("not_found", 404, 0.0001);
  const std::string text = m.render();
  EXPECT_TRUE(has_line(text, R"(respawn_requests_total{route="infer",code="200"} 2)")) << text;
  EXPECT_TRUE(has_line(text, R"(respawn_requests_total{route="infer",code="503"} 1)"));
  EXPECT_TRUE(has_line(text, R"(respawn_requests_total{route="generate",code="200"} 1)"));
  EXPECT_TRUE(has_line(text, R"(respawn_requests_total{route="not_found",code="404"} 1)"));
  EXPECT_EQ(text.find(R"(route="generate",code="503")"), std::string::npos);
  EXPECT_EQ(value_of(text, R"(respawn_request_duration_seconds_count{route="infer"})"), 3);
  EXPECT_EQ(value_of(text, R"(respawn_request_duration_seconds_count{route="generate"})"), 1);
  EXPECT_DOUBLE_EQ(value_of(text, R"(respawn_request_duration_seconds_sum{route="infer"})"), 0.031);
}

TEST(Metrics, HistogramBucketsAreCumulativeAndInfEqualsCount) {
  Metrics m;
  // Bounds are 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30.
  for (double v : {0.0001, 0.001, 0.003, 0.003, 0.2, 1.0, 7.0, 100.0, 1000.0}) m.on_inference(v);
  const std::string text = m.render();
  const std::string h = "respawn_inference_seconds";
  EXPECT_EQ(bucket_at(text, h, 0.0005), 1);
  EXPECT_EQ(bucket_at(text, h, 0.001), 2);  // a value on a bound counts in it
  EXPECT_EQ(bucket_at(text, h, 0.0025), 2);
  EXPECT_EQ(bucket_at(text, h, 0.005), 4);
  EXPECT_EQ(bucket_at(text, h, 0.25), 5);
  EXPECT_EQ(bucket_at(text, h, 1), 6);
  EXPECT_EQ(bucket_at(text, h, 10), 7);
  EXPECT_EQ(bucket_at(text, h, 30), 7);
  EXPECT_EQ(bucket_at(text, h, HUGE_VAL), 9);
  EXPECT_EQ(value_of(text, "respawn_inference_seconds_count"), 9);
  EXPECT_DOUBLE_EQ(value_of(text, "respawn_inference_seconds_sum"),
                   0.0001 + 0.001 + 0.003 + 0.003 + 0.2 + 1.0 + 7.0 + 100.0 + 1000.0);

  const auto buckets = bucket_values(text, h + "_bucket{");
  ASSERT_EQ(buckets.size(), 16u);  // 15 bounds + Inf
  for (std::size_t i = 1; i < buckets.size(); ++i) EXPECT_LE(buckets[i - 1], buckets[i]) << i;
}

TEST(Metrics, LabelledHistogramKeepsRouteBeforeLe) {
  Metrics m;
  m.on_request("infer", 200, 0.004);
  m.on_request("infer", 200, 60);
  const std::string text = m.render();
  EXPECT_EQ(bucket_at(text, "respawn_request_duration_seconds", 0.0025, R"(route="infer")"), 0);
  EXPECT_EQ(bucket_at(text, "respawn_request_duration_seconds", 0.005, R"(route="infer")"), 1);
  EXPECT_EQ(bucket_at(text, "respawn_request_duration_seconds", 30, R"(route="infer")"), 1);
  EXPECT_EQ(bucket_at(text, "respawn_request_duration_seconds", HUGE_VAL, R"(route="infer")"), 2);
}

TEST(Metrics, EmptyHistogramsRenderZeroes) {
  const std::string text = Metrics().render();
  EXPECT_EQ(value_of(text, R"(respawn_queue_wait_seconds_bucket{le="+Inf"})"), 0);
  EXPECT_EQ(value_of(text, "respawn_queue_wait_seconds_count"), 0);
  EXPECT_EQ(value_of(text, "respawn_queue_wait_seconds_sum"), 0);
  // No route seen, no per-route series.
  EXPECT_EQ(text.find("respawn_requests_total{"), std::string::npos);
  EXPECT_EQ(text.find("respawn_request_duration_seconds_bucket"), std::string::npos);
}

TEST(Metrics, StartupHistogramUsesItsOwnBounds) {
  Metrics m;
  m.on_worker_ready(1.5);
  m.on_queue_wait(0.02);
  const std::string text = m.render();
  const std::string h = "respawn_worker_time_to_ready_seconds";
  EXPECT_EQ(bucket_at(text, h, 1), 0);
  EXPECT_EQ(bucket_at(text, h, 2), 1);
  EXPECT_EQ(bucket_at(text, h, 120), 1);
  EXPECT_EQ(bucket_values(text, h + "_bucket{").size(), 11u);  // 10 bounds + Inf
  EXPECT_EQ(bucket_at(text, "respawn_queue_wait_seconds", 0.025), 1);
  EXPECT_EQ(bucket_at(text, "respawn_queue_wait_seconds", 0.01), 0);
}

TEST(Metrics, WorkerExitsByReason) {
  Metrics m;
  m.on_worker_start(false);
  m.on_worker_start(true);
  m.on_worker_start(true);
  m.on_recycle("crash");
  m.on_recycle("oom_kill");
  m.on_recycle("crash");
  const std::string text = m.render();
  EXPECT_TRUE(has_line(text, "respawn_worker_starts_total 3"));
  EXPECT_TRUE(has_line(text, "respawn_worker_forks_total 2"));
  EXPECT_TRUE(has_line(text, R"(respawn_worker_recycles_total{reason="crash"} 2)")) << text;
  EXPECT_TRUE(has_line(text, R"(respawn_worker_recycles_total{reason="oom_kill"} 1)"));
}

TEST(Metrics, Gauges) {
  Metrics m;
  const std::string before = m.render();
  EXPECT_TRUE(has_line(before, "respawn_ready 0"));
  EXPECT_TRUE(has_line(before, "respawn_queue_depth 0"));
  m.set_queue_depth(5);
  m.set_inflight(1);
  m.set_ready(true);
  m.set_worker_rss(123456789);
  m.set_fork_server(true, 4096);
  const std::string after = m.render();
  EXPECT_TRUE(has_line(after, "respawn_fork_server_ready 1"));
  EXPECT_TRUE(has_line(after, "respawn_fork_server_resident_memory_bytes 4096"));
  EXPECT_TRUE(has_line(after, "respawn_queue_depth 5"));
  EXPECT_TRUE(has_line(after, "respawn_requests_inflight 1"));
  EXPECT_TRUE(has_line(after, "respawn_ready 1"));
  EXPECT_EQ(value_of(after, "respawn_worker_rss_bytes"), 123456789.0);
  m.set_queue_depth(0);
  EXPECT_TRUE(has_line(m.render(), "respawn_queue_depth 0"));
}

TEST(Metrics, StandaloneHistogramRender) {
  Histogram h({1, 2});
  h.observe(0.5);
  h.observe(2);
  h.observe(3);
  std::string out;
  h.render(out, "x", "");
  EXPECT_EQ(out,
            "x_bucket{le=\"1\"} 1\n"
            "x_bucket{le=\"2\"} 2\n"
            "x_bucket{le=\"+Inf\"} 3\n"
            "x_sum 5.5\n"
            "x_count 3\n");
  std::string labelled;
  h.render(labelled, "y", "a=\"b\"");
  EXPECT_NE(labelled.find("y_bucket{a=\"b\",le=\"1\"} 1\n"), std::string::npos) << labelled;
  EXPECT_NE(labelled.find("y_sum{a=\"b\"} 5.5\n"), std::string::npos) << labelled;
}

}  // namespace
}  // namespace respawn
