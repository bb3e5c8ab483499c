// Tests for the Prometheus metrics (supervisor/metrics.hpp).
#include "metrics.hpp"

#include <cmath>
#include <cstdlib>
#include <ctime>
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
  for (double v : {0.0001, 0.001, 0.003, 0.003, 0.2, 1.0, 7.0, 100.0, 1000.0}) {
    m.on_inference("infer", v);
  }
  const std::string text = m.render();
  const std::string h = "respawn_inference_seconds";
  const std::string r = R"(route="infer")";
  EXPECT_EQ(bucket_at(text, h, 0.0005, r), 1);
  EXPECT_EQ(bucket_at(text, h, 0.001, r), 2);  // a value on a bound counts in it
  EXPECT_EQ(bucket_at(text, h, 0.0025, r), 2);
  EXPECT_EQ(bucket_at(text, h, 0.005, r), 4);
  EXPECT_EQ(bucket_at(text, h, 0.25, r), 5);
  EXPECT_EQ(bucket_at(text, h, 1, r), 6);
  EXPECT_EQ(bucket_at(text, h, 10, r), 7);
  EXPECT_EQ(bucket_at(text, h, 30, r), 7);
  EXPECT_EQ(bucket_at(text, h, HUGE_VAL, r), 9);
  EXPECT_EQ(value_of(text, R"(respawn_inference_seconds_count{route="infer"})"), 9);
  EXPECT_DOUBLE_EQ(value_of(text, R"(respawn_inference_seconds_sum{route="infer"})"),
                   0.0001 + 0.001 + 0.003 + 0.003 + 0.2 + 1.0 + 7.0 + 100.0 + 1000.0);

  const auto buckets = bucket_values(text, h + "_bucket{" + r);
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
  EXPECT_EQ(value_of(text, R"(respawn_batch_size_bucket{le="+Inf"})"), 0);
  EXPECT_EQ(value_of(text, "respawn_batch_size_count"), 0);
  EXPECT_EQ(value_of(text, "respawn_batch_size_sum"), 0);
  // No route seen, no per-route series (the families' HELP lines are there).
  EXPECT_EQ(text.find("respawn_requests_total{"), std::string::npos);
  EXPECT_EQ(text.find("respawn_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_EQ(text.find("respawn_queue_wait_seconds_bucket"), std::string::npos);
  EXPECT_EQ(text.find("respawn_inference_seconds_bucket"), std::string::npos);
  EXPECT_NE(text.find("# HELP respawn_queue_wait_seconds "), std::string::npos);
}

TEST(Metrics, QueueWaitAndInferenceByRoute) {
  Metrics m;
  m.on_queue_wait("generate", 0.02);
  m.on_queue_wait("generate", 0);
  m.on_queue_wait("openai_chat", 2);
  m.on_inference("generate", 0.3);
  m.on_inference("generate_stream", 0.004);
  const std::string text = m.render();
  EXPECT_EQ(value_of(text, R"(respawn_queue_wait_seconds_count{route="generate"})"), 2);
  EXPECT_DOUBLE_EQ(value_of(text, R"(respawn_queue_wait_seconds_sum{route="generate"})"), 0.02);
  EXPECT_EQ(value_of(text, R"(respawn_queue_wait_seconds_count{route="openai_chat"})"), 1);
  EXPECT_EQ(bucket_at(text, "respawn_queue_wait_seconds", 1, R"(route="openai_chat")"), 0);
  EXPECT_EQ(bucket_at(text, "respawn_queue_wait_seconds", 2.5, R"(route="openai_chat")"), 1);
  EXPECT_EQ(value_of(text, R"(respawn_inference_seconds_count{route="generate"})"), 1);
  EXPECT_EQ(bucket_at(text, "respawn_inference_seconds", 0.005, R"(route="generate_stream")"), 1);
  EXPECT_TRUE(
      std::isnan(value_of(text, R"(respawn_inference_seconds_count{route="openai_chat"})")));
  EXPECT_TRUE(std::isnan(value_of(text, R"(respawn_queue_wait_seconds_count{route="infer"})")));
}

TEST(Metrics, WorkerStateOneHot) {
  Metrics m;
  const std::string none = m.render();
  EXPECT_TRUE(has_line(none, "# TYPE respawn_worker_state gauge"));
  for (const char* state : {"spawning", "ready", "busy", "draining", "exited"}) {
    EXPECT_TRUE(has_line(none, std::string("respawn_worker_state{state=\"") + state + "\"} 0"))
        << state;
  }
  EXPECT_TRUE(has_line(none, "respawn_worker_uptime_seconds 0"));
  m.set_worker_state(WorkerState::busy, 12.5);
  const std::string busy = m.render();
  EXPECT_TRUE(has_line(busy, R"(respawn_worker_state{state="busy"} 1)")) << busy;
  EXPECT_TRUE(has_line(busy, R"(respawn_worker_state{state="ready"} 0)"));
  EXPECT_TRUE(has_line(busy, R"(respawn_worker_state{state="spawning"} 0)"));
  EXPECT_TRUE(has_line(busy, "respawn_worker_uptime_seconds 12.5"));
  m.set_worker_state(std::nullopt, 0);
  EXPECT_TRUE(has_line(m.render(), R"(respawn_worker_state{state="busy"} 0)"));
}

TEST(Metrics, BreakerStateOneHot) {
  Metrics m;
  const std::string closed = m.render();
  EXPECT_TRUE(has_line(closed, "# TYPE respawn_breaker_state gauge"));
  EXPECT_TRUE(has_line(closed, R"(respawn_breaker_state{state="closed"} 1)")) << closed;
  EXPECT_TRUE(has_line(closed, R"(respawn_breaker_state{state="open"} 0)"));
  EXPECT_TRUE(has_line(closed, R"(respawn_breaker_state{state="half_open"} 0)"));
  m.set_breaker_state(CircuitBreaker::State::half_open);
  const std::string half = m.render();
  EXPECT_TRUE(has_line(half, R"(respawn_breaker_state{state="closed"} 0)"));
  EXPECT_TRUE(has_line(half, R"(respawn_breaker_state{state="half_open"} 1)"));
}

TEST(Metrics, PolicyLimitsFollowTheLivePolicy) {
  Metrics m;
  const std::string defaults = m.render();
  EXPECT_TRUE(has_line(defaults, "# TYPE respawn_policy_limit gauge"));
  EXPECT_TRUE(has_line(defaults, R"(respawn_policy_limit{knob="max_batch_size"} 8)")) << defaults;
  EXPECT_TRUE(has_line(defaults, R"(respawn_policy_limit{knob="request_timeout_ms"} 120000)"));
  Policy policy;
  policy.max_requests = 100;
  policy.max_worker_age_s = 3600;
  policy.max_worker_rss_mb = 2048;
  policy.max_gpu_memory_mb = 7000;
  policy.max_batch_size = 4;
  policy.request_timeout_ms = 5000;
  m.set_policy(policy);
  const std::string text = m.render();
  EXPECT_TRUE(has_line(text, R"(respawn_policy_limit{knob="max_requests"} 100)"));
  EXPECT_TRUE(has_line(text, R"(respawn_policy_limit{knob="max_worker_age_s"} 3600)"));
  EXPECT_TRUE(has_line(text, R"(respawn_policy_limit{knob="max_worker_rss_mb"} 2048)"));
  EXPECT_TRUE(has_line(text, R"(respawn_policy_limit{knob="max_gpu_memory_mb"} 7000)"));
  EXPECT_TRUE(has_line(text, R"(respawn_policy_limit{knob="max_batch_size"} 4)"));
  EXPECT_TRUE(has_line(text, R"(respawn_policy_limit{knob="request_timeout_ms"} 5000)"));
  // Every numeric knob, and only those: the booleans are not limits.
  std::size_t uint_knobs = 0;
  for (const auto& knob : policy_knobs()) {
    const std::string series = "respawn_policy_limit{knob=\"" + std::string(knob.name) + "\"}";
    if (knob.type == KnobType::uint) {
      ++uint_knobs;
      EXPECT_FALSE(std::isnan(value_of(text, series))) << knob.name;
    } else {
      EXPECT_TRUE(std::isnan(value_of(text, series))) << knob.name;
    }
  }
  EXPECT_EQ(bucket_values(text, "respawn_policy_limit{").size(), uint_knobs);
}

TEST(Metrics, BuildInfo) {
  Metrics m;
  EXPECT_TRUE(
      has_line(m.render(), R"(respawn_build_info{version="unknown",libtorch="unknown"} 1)"));
  m.set_build_info("0.1.0", "2.9.1");
  const std::string text = m.render();
  EXPECT_TRUE(has_line(text, "# TYPE respawn_build_info gauge"));
  EXPECT_TRUE(has_line(text, R"(respawn_build_info{version="0.1.0",libtorch="2.9.1"} 1)")) << text;
  m.set_build_info("0.1.0", "a\"b\\c\nd");  // escaped as the text format requires
  EXPECT_TRUE(
      has_line(m.render(), R"(respawn_build_info{version="0.1.0",libtorch="a\"b\\c\nd"} 1)"));
}

TEST(Metrics, ProcessMetricsOnceSet) {
  Metrics m;
  EXPECT_EQ(m.render().find("process_"), std::string::npos);
  ProcessStats p;
  p.resident_bytes = 1000;
  p.virtual_bytes = 5000;
  p.open_fds = 12;
  p.max_fds = 1024;
  p.start_time_seconds = 1700000000.5;
  p.cpu_seconds = 1.25;
  m.set_process(p);
  const std::string text = m.render();
  EXPECT_TRUE(has_line(text, "# TYPE process_cpu_seconds_total counter"));
  EXPECT_TRUE(has_line(text, "# TYPE process_resident_memory_bytes gauge"));
  EXPECT_TRUE(has_line(text, "process_resident_memory_bytes 1000"));
  EXPECT_TRUE(has_line(text, "process_virtual_memory_bytes 5000"));
  EXPECT_TRUE(has_line(text, "process_open_fds 12"));
  EXPECT_TRUE(has_line(text, "process_max_fds 1024"));
  EXPECT_EQ(value_of(text, "process_start_time_seconds"), 1700000000.5);
  EXPECT_EQ(value_of(text, "process_cpu_seconds_total"), 1.25);
}

TEST(Metrics, ProcessStatsOfThisProcess) {
  const auto p = read_process_stats();
  EXPECT_GT(p.resident_bytes, 0u);
  EXPECT_GE(p.virtual_bytes, p.resident_bytes);
  EXPECT_GE(p.open_fds, 3u);  // at least stdin, stdout, stderr
  EXPECT_GE(p.max_fds, p.open_fds);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_GT(p.start_time_seconds, now - 24 * 3600.0);  // a test started within a day...
  EXPECT_LE(p.start_time_seconds, now + 2);            // ...and not in the future
  EXPECT_GE(p.cpu_seconds, 0);
}

TEST(Metrics, StartupHistogramUsesItsOwnBounds) {
  Metrics m;
  m.on_worker_ready(1.5);
  m.on_queue_wait("infer", 0.02);
  const std::string text = m.render();
  const std::string h = "respawn_worker_time_to_ready_seconds";
  EXPECT_EQ(bucket_at(text, h, 1), 0);
  EXPECT_EQ(bucket_at(text, h, 2), 1);
  EXPECT_EQ(bucket_at(text, h, 120), 1);
  EXPECT_EQ(bucket_values(text, h + "_bucket{").size(), 11u);  // 10 bounds + Inf
  EXPECT_EQ(bucket_at(text, "respawn_queue_wait_seconds", 0.025, R"(route="infer")"), 1);
  EXPECT_EQ(bucket_at(text, "respawn_queue_wait_seconds", 0.01, R"(route="infer")"), 0);
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

TEST(Metrics, LifecycleEventsGoToTheListener) {
  Metrics m;
  std::vector<LifecycleEvent> seen;
  m.on_recycle("crash", 7);  // no listener yet: only counted
  m.set_event_listener([&](const LifecycleEvent& e) { seen.push_back(e); });
  m.on_worker_start(true, 11);
  m.on_worker_ready(0.25, 11);
  m.on_recycle("operator", 11);
  m.on_replayed("request 3 after crash");
  m.on_quarantined("request 4: crashed alone");
  m.on_breaker_open("5 failures");
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[0].kind, "worker_started");
  EXPECT_EQ(seen[0].pid, 11);
  EXPECT_EQ(seen[0].reason, "forked");
  EXPECT_EQ(seen[1].kind, "worker_ready");
  EXPECT_EQ(seen[2].kind, "recycle");
  EXPECT_EQ(seen[2].reason, "operator");
  EXPECT_EQ(seen[3].kind, "replay");
  EXPECT_EQ(seen[4].kind, "quarantine");
  EXPECT_EQ(seen[5].kind, "breaker");
  m.set_event_listener(nullptr);
  m.on_recycle("crash", 12);
  EXPECT_EQ(seen.size(), 6u);
}

TEST(Metrics, IntervalsAreCollectedOnlyWhenAsked) {
  Metrics m;
  m.on_request("infer", 200, 0.5);
  m.on_batch(4);
  auto idle = m.take_interval();
  EXPECT_EQ(idle.requests, 1u);
  EXPECT_TRUE(idle.latencies_s.empty());
  EXPECT_TRUE(idle.batch_sizes.empty());
  m.collect_intervals(true);
  m.on_request("generate", 200, 0.1);
  m.on_request("metrics", 200, 0.2);  // not a model route: no latency sample
  m.on_request("infer", 503, 0.3);
  m.on_batch(2);
  m.on_batch(2);
  m.on_batch(1);
  auto first = m.take_interval();
  EXPECT_EQ(first.requests, 4u);
  EXPECT_EQ(first.errors, 1u);
  EXPECT_EQ(first.latencies_s, (std::vector<double>{0.1, 0.3}));
  EXPECT_EQ(first.batch_sizes, (std::map<std::uint64_t, std::uint64_t>{{1, 1}, {2, 2}}));
  auto second = m.take_interval();  // a new interval: totals stay, the rest starts over
  EXPECT_EQ(second.requests, 4u);
  EXPECT_TRUE(second.latencies_s.empty());
  EXPECT_TRUE(second.batch_sizes.empty());
}

}  // namespace
}  // namespace respawn
