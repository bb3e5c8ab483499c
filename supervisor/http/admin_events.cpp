#include "http/admin_events.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace respawn {

using nlohmann::json;

namespace {

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string sse(const json& event) {
  return "data: " + event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// The q-quantile (0..1) of `values` in milliseconds (nearest rank), or null when empty.
json quantile_ms(std::vector<double>& values, double q) {
  if (values.empty()) return nullptr;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  const auto index = std::min(values.size() - 1, rank == 0 ? 0 : rank - 1);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                   values.end());
  return std::round(values[index] * 1e6) / 1e3;  // ms, to the microsecond
}

}  // namespace

AdminEvents::AdminEvents(boost::asio::io_context& io, Metrics& metrics, Body workers, Body snapshot)
    : io_(io),
      metrics_(metrics),
      workers_(std::move(workers)),
      snapshot_(std::move(snapshot)),
      timer_(io) {
  metrics_.set_event_listener([this](const LifecycleEvent& event) { on_event(event); });
}

AdminEvents::~AdminEvents() {
  *alive_ = false;
  metrics_.set_event_listener(nullptr);
  metrics_.collect_intervals(false);
}

void AdminEvents::subscribe(std::shared_ptr<StreamSink> sink, Respond keep,
                            const RequestContext& context) {
  prune();
  if (stopped_) {
    return keep(error_response(make_error(ErrorKind::unavailable, "the server is shutting down")));
  }
  if (subscribers_.size() >= kMaxSubscribers) {
    return keep(error_response(
        make_error(ErrorKind::unavailable, "too many event streams open (at most " +
                                               std::to_string(kMaxSubscribers) + "); close one")));
  }
  // Built before the stream starts: if it throws, the error is still a plain answer.
  json first = snapshot_();
  first["type"] = "snapshot";
  const auto id = next_id_++;
  sink->start(http::status::ok, "text/event-stream; charset=utf-8");
  sink->write(sse(first));
  subscribers_.push_back({id, std::move(sink), std::move(keep)});
  if (context.on_disconnect) {
    context.on_disconnect([this, alive = std::weak_ptr<bool>(alive_), id] {
      if (alive.lock()) unsubscribe(id);
    });
  }
  update_timer();
}

void AdminEvents::unsubscribe(std::uint64_t id) {
  const auto it = std::find_if(subscribers_.begin(), subscribers_.end(),
                               [id](const Subscriber& s) { return s.id == id; });
  if (it == subscribers_.end()) return;
  // Moved out first: dropping `keep` may release the session, which may call back here.
  auto gone = std::move(*it);
  subscribers_.erase(it);
  update_timer();
}

void AdminEvents::prune() {
  std::vector<Subscriber> gone;
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    if (it->sink->closed()) {
      gone.push_back(std::move(*it));
      it = subscribers_.erase(it);
    } else {
      ++it;
    }
  }
  if (!gone.empty()) update_timer();
}

void AdminEvents::policy_changed(const json& policy) {
  broadcast({{"type", "policy"}, {"policy", policy}});
}

void AdminEvents::stop() {
  stopped_ = true;
  auto all = std::move(subscribers_);
  subscribers_.clear();
  for (auto& s : all) s.sink->finish();
  update_timer();
}

void AdminEvents::broadcast(const json& event) {
  prune();
  if (subscribers_.empty()) return;
  const auto text = sse(event);
  // A copy: writing cannot change the list, but keep this safe against it.
  const auto sinks = subscribers_;
  for (const auto& s : sinks) s.sink->write(text);
}

void AdminEvents::on_event(const LifecycleEvent& event) {
  if (subscribers_.empty()) return;
  json e = {{"type", "event"},
            {"t", unix_ms()},
            {"kind", event.kind},
            {"pid", event.pid},
            {"reason", event.reason.empty() ? json(nullptr) : json(event.reason)},
            {"detail", event.detail.empty() ? json(nullptr) : json(event.detail)}};
  broadcast(e);
}

void AdminEvents::update_timer() {
  const bool want = !subscribers_.empty() && !stopped_;
  if (want == ticking_) return;
  ticking_ = want;
  metrics_.collect_intervals(want);
  if (!want) {
    timer_.cancel();
    return;
  }
  metrics_.take_interval();  // start a fresh interval
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
    if (ec || !alive.lock()) return;
    tick();
  });
}

void AdminEvents::tick() {
  if (!ticking_) return;
  auto interval = metrics_.take_interval();
  json batches = json::object();
  for (const auto& [size, n] : interval.batch_sizes) batches[std::to_string(size)] = n;
  json stats = {{"type", "stats"},
                {"t", unix_ms()},
                {"queue_depth", metrics_.queue_depth()},
                {"inflight", metrics_.inflight()},
                {"requests", interval.requests},
                {"errors", interval.errors},
                {"latency_p50_ms", quantile_ms(interval.latencies_s, 0.5)},
                {"latency_p99_ms", quantile_ms(interval.latencies_s, 0.99)},
                {"batch_sizes", batches},
                {"workers", workers_()}};
  broadcast(stats);
  if (subscribers_.empty() || stopped_) return;  // broadcast pruned the last one
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
    if (ec || !alive.lock()) return;
    tick();
  });
}

}  // namespace respawn
