// Fuzzes the HTTP request path: raw bytes from a client, parsed as HttpSession does (Beast's
// request parser with the server's header and body limits, pipelined requests in one read),
// routed and handled by the real Api, Scheduler and WorkerManager. The manager is never started,
// so no worker process exists: accepted jobs wait in the queue until the simulated client leaves
// (or the server drains), which ends them. Invariants: a handler answers exactly once in the
// end, never twice; every error answer is JSON with an "error" string (or OpenAI's error
// object); no exception escapes; nothing leaks.
//
// Input: byte 0 holds flags (see Flags), the rest is what the client sent.
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "fuzz_check.hpp"
#include "http/api.hpp"
#include "lifecycle/worker_manager.hpp"
#include "metrics.hpp"
#include "respawn/json_util.hpp"
#include "scheduling/scheduler.hpp"
#include "serve_options.hpp"

using namespace respawn;
using nlohmann::json;

namespace {

namespace beast = boost::beast;
namespace asio = boost::asio;

enum Flags : std::uint8_t {
  kLoopback = 1,         // the client is on loopback (admin routes open without a token)
  kAdminToken = 2,       // --admin-token secret
  kFaultInjection = 4,   // --enable-fault-injection
  kDrain = 8,            // end queued jobs by a server drain instead of a client disconnect
  kSmallBodyLimit = 16,  // --max-body-bytes 64, to reach the parser's body limit
};

constexpr std::size_t kHeaderLimit = 16 * 1024;  // as supervisor/http/http_server.cpp
constexpr int kMaxRequests = 8;                  // pipelined requests per input

// What the handler did with one request.
struct Outcome {
  int answers = 0;
  bool stream_started = false;
  bool stream_finished = false;
  std::function<void()> on_disconnect;
};

class CheckingSink : public StreamSink {
 public:
  explicit CheckingSink(std::shared_ptr<Outcome> outcome) : outcome_(std::move(outcome)) {}
  void start(http::status status, const std::string&) override {
    FUZZ_CHECK(!outcome_->stream_started && outcome_->answers == 0, "stream started twice");
    FUZZ_CHECK(status == http::status::ok, "a stream that does not start with 200");
    outcome_->stream_started = true;
  }
  void write(std::string data) override {
    FUZZ_CHECK(outcome_->stream_started && !outcome_->stream_finished, "write outside a stream");
    FUZZ_CHECK(data.rfind("data: ", 0) == 0, "a stream event that is not SSE");
  }
  void finish() override {
    FUZZ_CHECK(outcome_->stream_started && !outcome_->stream_finished, "stream finished twice");
    outcome_->stream_finished = true;
  }

 private:
  std::shared_ptr<Outcome> outcome_;
};

void check_response(HttpResponse& res, unsigned version, bool keep_alive) {
  const int status = res.result_int();
  FUZZ_CHECK(status >= 200 && status <= 599, "status out of range");
  // With no worker nothing can fail internally: a 500 is a handler's exception that Api::handle
  // turned into an answer (a bug all the same).
  FUZZ_CHECK(status != 500, "a 500: a handler threw or failed internally");
  // /metrics is text/plain, the status page (GET /, /status) text/html; errors are JSON.
  const auto type = res[http::field::content_type];
  const bool text = type.rfind("text/plain", 0) == 0 || type.rfind("text/html", 0) == 0;
  FUZZ_CHECK(!text || status == 200, "a text error answer");
  if (!text) {
    const json body = parse_json(res.body());
    FUZZ_CHECK(!body.is_discarded() && body.is_object(), "an answer that is not a JSON object");
    // A readiness probe's 503 is an answer, not an error: {"ready": false, "state": ...}.
    const bool not_ready = status == 503 && json_field(body, "ready") == false;
    if (status >= 400 && !not_ready) {
      const auto& error = json_field(body, "error");
      FUZZ_CHECK(error.is_string() || json_field(error, "message").is_string(),
                 "an error answer without an error message");
    }
  }
  if (status == 405) FUZZ_CHECK(!res[http::field::allow].empty(), "405 without Allow");
  // What HttpSession::send does before writing; prepare_payload throws on a bad combination.
  res.version(version);
  res.keep_alive(keep_alive);
  res.prepare_payload();
}

// The answer HttpSession::on_read gives for a parse error (it never reaches the Api).
void check_parse_error(beast::error_code ec) {
  if (ec == http::error::body_limit || ec == http::error::header_limit) return;
  HttpResponse res =
      error_response(make_error(ErrorKind::bad_input, "malformed HTTP request: " + ec.message()));
  check_response(res, 11, false);
}

// One server: fresh per input, so that inputs cannot influence each other (PATCH
// /admin/policy changes the live policy).
struct Server {
  explicit Server(std::uint8_t flags) {
    options.model_name = "demo";
    options.max_queue = 4;
    if (flags & kAdminToken) options.admin_token = "secret";
    options.enable_fault_injection = (flags & kFaultInjection) != 0;
    if (flags & kSmallBodyLimit) options.max_body_bytes = 64;
    manager = std::make_shared<WorkerManager>(io, options, options.policy, metrics);
    scheduler = std::make_unique<Scheduler>(io, options.max_queue, manager, metrics);
    api = std::make_unique<Api>(*scheduler, metrics, options);
  }
  void poll() {
    io.restart();
    io.poll();
  }

  asio::io_context io;
  ServeOptions options;
  Metrics metrics;
  std::shared_ptr<WorkerManager> manager;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<Api> api;
};

// Parses one request from the front of `rest` as the session's parser would; nullopt with
// `ec` set when the bytes are not a request (or not a whole one).
std::optional<HttpRequest> parse_request(std::string_view& rest, std::size_t body_limit,
                                         beast::error_code& ec) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(body_limit);
  parser.eager(true);
  while (!parser.is_done()) {
    if (rest.empty()) {
      parser.put_eof(ec);
      if (!ec && !parser.is_done()) ec = http::error::partial_message;
      if (ec) return std::nullopt;
      break;
    }
    const std::size_t used = parser.put(asio::buffer(rest.data(), rest.size()), ec);
    rest.remove_prefix(used);
    if (ec == http::error::need_more) {
      ec = {};
      if (used == 0) rest = {};  // no more bytes are coming: the next turn sends EOF
      continue;
    }
    if (ec) return std::nullopt;
  }
  return parser.release();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  Server server(flags);
  RequestContext context;
  context.from_loopback = (flags & kLoopback) != 0;

  for (int i = 0; i < kMaxRequests && !rest.empty(); ++i) {
    beast::error_code ec;
    auto request = parse_request(rest, server.options.max_body_bytes, ec);
    if (!request) {
      if (ec != http::error::partial_message) check_parse_error(ec);
      break;
    }
    const unsigned version = request->version();
    const bool keep_alive = request->keep_alive();
    auto outcome = std::make_shared<Outcome>();
    context.open_stream = [outcome] { return std::make_shared<CheckingSink>(outcome); };
    context.on_disconnect = [outcome](std::function<void()> callback) {
      outcome->on_disconnect = std::move(callback);
    };
    server.api->handle(*request, context, [outcome, version, keep_alive](HttpResponse res) {
      FUZZ_CHECK(!outcome->stream_started, "an answer after the stream started");
      FUZZ_CHECK(++outcome->answers == 1, "answered twice");
      check_response(res, version, keep_alive);
    });
    // A large body is parsed on a helper thread and handled when it posts back: wait for
    // the handler to answer or queue the job (bounded; small bodies never wait).
    const auto settled = [&] {
      return outcome->answers > 0 || outcome->stream_finished || outcome->on_disconnect;
    };
    server.poll();
    for (int spins = 0; !settled() && spins < 5000; ++spins) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      server.poll();
    }
    if (outcome->answers == 0 && !outcome->stream_finished) {
      // Queued for a worker that never comes: the client leaves, or the server shuts down.
      if (flags & kDrain) {
        server.scheduler->drain(std::chrono::milliseconds(0), [] {});
      } else {
        FUZZ_CHECK(outcome->on_disconnect != nullptr, "a pending request with no way to cancel");
        std::exchange(outcome->on_disconnect, nullptr)();
      }
      server.poll();
    }
    FUZZ_CHECK(outcome->answers + (outcome->stream_finished ? 1 : 0) == 1,
               "a request that was never answered");
    if (!keep_alive) break;
  }
  FUZZ_CHECK(server.scheduler->queued() == 0, "jobs left in the queue");
  return 0;
}
