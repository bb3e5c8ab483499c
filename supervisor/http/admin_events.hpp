#pragma once
// GET /admin/events: the status page's live feed, as Server-Sent Events. Each subscriber gets
// a `snapshot` first, then lifecycle `event`s as Metrics reports them, a `policy` event after
// each change, and a `stats` event every second (the timer runs only while someone listens).
// Bounded: at most kMaxSubscribers streams; a subscriber whose client has gone is dropped.
// Used on the I/O thread only; the io_context and Metrics must outlive it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "http/http_types.hpp"
#include "metrics.hpp"

namespace respawn {

class AdminEvents {
 public:
  static constexpr std::size_t kMaxSubscribers = 16;
  using Body = std::function<nlohmann::json()>;

  // `workers`: GET /admin/workers's body; `snapshot`: the snapshot event (without "type").
  AdminEvents(boost::asio::io_context& io, Metrics& metrics, Body workers, Body snapshot);
  ~AdminEvents();
  AdminEvents(const AdminEvents&) = delete;
  AdminEvents& operator=(const AdminEvents&) = delete;

  // Starts `sink` (200, text/event-stream) and sends it the snapshot. `keep` holds the
  // connection while it is subscribed (dropped with the subscriber). Answers 503 through
  // `respond` instead when kMaxSubscribers already listen, or after stop().
  void subscribe(std::shared_ptr<StreamSink> sink, Respond keep, const RequestContext& context);
  // Sends {"type":"policy","policy":...} to everyone.
  void policy_changed(const nlohmann::json& policy);
  // Ends every stream (the server drains) and refuses new ones.
  void stop();
  std::size_t subscribers() const { return subscribers_.size(); }

 private:
  struct Subscriber {
    std::uint64_t id;
    std::shared_ptr<StreamSink> sink;
    Respond keep;
  };
  void broadcast(const nlohmann::json& event);
  void on_event(const LifecycleEvent& event);
  void tick();
  void prune();
  void unsubscribe(std::uint64_t id);
  void update_timer();

  boost::asio::io_context& io_;
  Metrics& metrics_;
  Body workers_;
  Body snapshot_;
  std::vector<Subscriber> subscribers_;
  std::uint64_t next_id_ = 1;
  bool stopped_ = false;
  bool ticking_ = false;
  boost::asio::steady_timer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace respawn
