#include "http/api.hpp"

#include <malloc.h>

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>
#include <chrono>

#include "http/generation.hpp"
#include "http/infer_json.hpp"
#include "http/openai.hpp"
#include "http/status_page.hpp"
#include "http/triton.hpp"
#include "respawn/generate_request.hpp"
#include "respawn/json_util.hpp"
#include "respawn/proc_stats.hpp"
#include "respawn/tensor_codec.hpp"
#include "respawn/utf8.hpp"

#include <spdlog/spdlog.h>

namespace respawn {
namespace {

using nlohmann::json;
constexpr const char* kVersion = "0.1.0";
constexpr const char* kModelVersion = "1";

// The body keys read_job_options reads.
constexpr const char* kJobOptionKeys[] = {"timeout", "priority"};

// Triton's generate extension takes sampling parameters at the top level or under
// "parameters"; the latter wins when both name a key. Only the keys anything reads are copied:
// the rest of a body may be large.
json generate_parameters(const json& body) {
  json params = json::object();
  const auto& nested = json_field(body, "parameters");
  const auto copy = [&](const char* key) {
    for (const json* from : {&nested, &body}) {
      if (const auto& value = json_field(*from, key); !value.is_null()) {
        params[key] = value;
        return;
      }
    }
  };
  for (const char* key : kGenerateParameterKeys) copy(key);
  for (const char* key : kJobOptionKeys) copy(key);
  return params;
}

// A request's own deadline and priority. In a KServe body's `parameters` they keep Triton's
// meaning (its schedule_policy extension): `timeout` in microseconds (0: none), `priority` 1
// first, 2 next and so on, 0 the default. The /v1 body and the X-Respawn-Timeout-Ms /
// X-Respawn-Priority headers take respawn's own: milliseconds, and 0 (default) .. 9 (first).
enum class Units { triton, respawn };

std::optional<Error> read_job_options(const HttpRequest& request, const json& params, Units units,
                                      Job& job) {
  const auto integer = [](const json& v, const char* key, std::int64_t min,
                          std::int64_t max) -> Result<std::int64_t> {
    const bool ok =
        v.is_number_integer() &&
        (v.is_number_unsigned() ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(max)
                                : v.get<std::int64_t>() >= min && v.get<std::int64_t>() <= max);
    if (!ok) {
      return make_error(ErrorKind::bad_input,
                        std::string("'") + key + "' must be an integer between " +
                            std::to_string(min) + " and " + std::to_string(max));
    }
    return v.get<std::int64_t>();
  };
  // The body's value, else the header's (as JSON if it parses, so "soon" is refused as text).
  const auto value = [&](const char* key, const char* header, Units& from) -> json {
    from = units;
    if (const auto& v = json_field(params, key); !v.is_null()) return v;
    from = Units::respawn;
    const std::string text(request[header]);
    if (text.empty()) return nullptr;
    auto parsed = parse_json(text);
    return parsed.is_discarded() ? json(text) : parsed;
  };
  Units from{};
  if (const auto timeout = value(kJobOptionKeys[0], "X-Respawn-Timeout-Ms", from);
      !timeout.is_null()) {
    if (from == Units::triton) {
      auto us = integer(timeout, "timeout", 0, std::int64_t{86400} * 1000000);
      if (!us) return us.error();
      if (*us > 0) job.timeout = std::chrono::milliseconds((*us + 999) / 1000);
    } else {
      auto ms = integer(timeout, "timeout", 1, 86400000);
      if (!ms) return ms.error();
      job.timeout = std::chrono::milliseconds(*ms);
    }
  }
  if (const auto priority = value(kJobOptionKeys[1], "X-Respawn-Priority", from);
      !priority.is_null()) {
    if (from == Units::triton) {
      // 1 -> 9 (first) ... 9 -> 1; 0 and anything past the last level -> the default 0.
      auto p = integer(priority, "priority", 0, std::numeric_limits<std::int64_t>::max());
      if (!p) return p.error();
      job.priority = *p > 0 && *p < kPriorityLevels ? kPriorityLevels - static_cast<int>(*p) : 0;
    } else {
      auto p = integer(priority, "priority", 0, kPriorityLevels - 1);
      if (!p) return p.error();
      job.priority = static_cast<int>(*p);
    }
  }
  return std::nullopt;
}

// Which worker answered, and in how large a batch: smoke reports and debugging tie a result
// to a process, and batching is visible per request.
HttpResponse with_worker_pid(HttpResponse res, const json& result) {
  res.set("X-Respawn-Worker-Pid", std::to_string(json_get<std::int64_t>(result, "pid", 0)));
  res.set("X-Respawn-Batch-Size", std::to_string(json_get<std::int64_t>(result, "batch_size", 1)));
  return res;
}

// The generate result without its "pid" and "batch_size" (which go into headers instead).
json without_pid(json result) {
  result.erase("pid");
  result.erase("batch_size");
  return result;
}

}  // namespace

Api::Api(Scheduler& scheduler, Metrics& metrics, const ServeOptions& options)
    : scheduler_(scheduler),
      started_unix_(std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count()),
      metrics_(metrics),
      options_(options),
      events_(
          scheduler.io(), metrics, [this] { return workers_body(); },
          [this] { return events_snapshot(); }),
      shm_(options.allow_client_shm) {}

Api::~Api() {
  parse_pool_.join();
}

namespace {

// An infer body's tensors may be long arrays of numbers: those are read apart (infer_json.hpp).
Result<json> parse_body(const Route& route, std::string_view text) {
  return route.id == RouteId::infer ? parse_infer_body(text) : parse_json_object(text);
}

// Routes whose request body is a JSON object, parsed before their handler runs.
bool takes_json_body(const Route& route, http::verb method) {
  switch (route.id) {
    case RouteId::infer:
    case RouteId::generate:
    case RouteId::generate_stream:
    case RouteId::openai_completions:
    case RouteId::openai_chat:
    case RouteId::admin_fault:
    case RouteId::tokenize:
    case RouteId::detokenize:
    case RouteId::shm_register:
      return true;
    case RouteId::admin_policy:
      return method == http::verb::patch;
    case RouteId::server_metadata:
    case RouteId::health_live:
    case RouteId::health_ready:
    case RouteId::model_metadata:
    case RouteId::model_config:
    case RouteId::model_ready:
    case RouteId::model_stats:
    case RouteId::openai_models:
    case RouteId::metrics:
    case RouteId::admin_workers:
    case RouteId::admin_recycle:
    case RouteId::admin_reload:
    case RouteId::admin_quarantine:
    case RouteId::admin_events:
    case RouteId::status_page:
    case RouteId::shm_status:
    case RouteId::shm_unregister:
    case RouteId::cuda_shm:
    case RouteId::method_not_allowed:
    case RouteId::not_found:
      return false;
  }
  return false;
}

bool is_admin(const Route& route) {
  return route.id == RouteId::admin_workers || route.id == RouteId::admin_policy ||
         route.id == RouteId::admin_recycle || route.id == RouteId::admin_reload ||
         route.id == RouteId::admin_fault || route.id == RouteId::admin_quarantine ||
         route.id == RouteId::admin_events;
}

bool is_openai_generate(const Route& route) {
  return route.id == RouteId::openai_completions || route.id == RouteId::openai_chat;
}

// Bodies from this size on are parsed on the helper thread: below it a parse takes well under
// a millisecond, less than the hand-over costs.
constexpr std::size_t kParseOffloadBytes = 256u << 10;

}  // namespace

void Api::handle(HttpRequest request, const RequestContext& context, Respond respond) {
  const auto route = match_route(request.method_string(), request.target());
  // Each request is answered once: a handler that answered and then threw must not answer
  // again from the exception guard.
  auto answered = std::make_shared<bool>(false);
  Respond recorded = [this, label = std::string(route.label()),
                      started = std::chrono::steady_clock::now(), answered,
                      respond = std::move(respond)](HttpResponse res) {
    if (std::exchange(*answered, true)) return;
    record(label, res.result_int(), started);
    respond(std::move(res));
  };
  // OpenAI clients read errors as {"error": {"message", "type", ...}}: every error answer of a
  // /v1 generate route, from parsing to a failed worker, is rewritten into that shape here.
  if (is_openai_generate(route)) {
    recorded = [respond = std::move(recorded)](HttpResponse res) {
      if (res.result_int() >= 400) {
        const auto message = json_get<std::string>(parse_json(res.body()), "error", res.body());
        res.body() = openai::error_body(res.result_int(), message).dump();
      }
      respond(std::move(res));
    };
  }
  run_guarded(metrics_, recorded, [&] {
    if (!route.model.empty() && route.model != options_.model_name) {
      return recorded(
          error_response(make_error(ErrorKind::not_found, "unknown model '" + route.model + "'")));
    }
    if (!route.version.empty() && route.version != kModelVersion) {
      return recorded(error_response(make_error(
          ErrorKind::not_found, "model '" + route.model + "' has no version '" + route.version +
                                    "' (it has version " + kModelVersion + ")")));
    }
    if (is_admin(route)) {
      if (auto refused = admin_refusal(request, context)) return recorded(std::move(*refused));
    }
    if (!takes_json_body(route, request.method())) {
      return handle_route(route, request, nullptr, context, recorded);
    }
    if (const auto coding = request[http::field::content_encoding];
        !coding.empty() && !boost::beast::iequals(coding, "identity")) {
      return recorded(error_response(make_error(
          ErrorKind::bad_input, "Content-Encoding '" + sanitize_utf8(std::string(coding)) +
                                    "' is not supported; send the body uncompressed")));
    }
    // Triton's binary tensor data: only the JSON header is JSON.
    auto header = triton::json_header_length(request);
    if (!header) return recorded(error_response(header.error()));
    if (*header && route.id != RouteId::infer) {
      return recorded(error_response(make_error(
          ErrorKind::bad_input, std::string(triton::kHeaderLength) + " is only for infer")));
    }
    const auto json_size = header->value_or(request.body().size());
    if (json_size < kParseOffloadBytes) {
      auto body = parse_body(route, std::string_view(request.body()).substr(0, json_size));
      if (!body) return recorded(error_response(body.error()));
      return handle_route(route, request, &*body, context, recorded);
    }
    // Large: parse on the helper thread, handle back on the I/O thread, then free the document
    // on the helper and give the memory back to the system (glibc keeps freed heap pages).
    // Everything the helper thread holds is moved on to the I/O thread's handler, so that the
    // session and its socket are only ever released on the I/O thread.
    auto shared = std::make_shared<HttpRequest>(std::move(request));
    boost::asio::post(parse_pool_, [this, route, shared, json_size, context, recorded]() mutable {
      auto body = std::make_shared<Result<nlohmann::json>>(
          parse_body(route, std::string_view(shared->body()).substr(0, json_size)));
      boost::asio::post(
          scheduler_.io(),
          [this, route = std::move(route), shared = std::move(shared), body = std::move(body),
           context = std::move(context), recorded = std::move(recorded)]() mutable {
            run_guarded(metrics_, recorded, [&] {
              if (!*body) return recorded(error_response(body->error()));
              handle_route(route, *shared, &**body, context, recorded);
            });
            // Freeing a large document takes as long as building it: back to the helper.
            boost::asio::post(parse_pool_,
                              [shared = std::move(shared), body = std::move(body)]() mutable {
                                body.reset();
                                shared.reset();
                                ::malloc_trim(0);  // free pages inside the heap, too
                              });
          });
    });
  });
}

void run_guarded(Metrics& metrics, Respond respond, const std::function<void()>& handler) {
  std::string what;
  try {
    handler();
    return;
  } catch (const std::exception& e) {
    what = sanitize_utf8(e.what());
  } catch (...) {
    what = "an unknown exception";
  }
  metrics.on_handler_exception();
  spdlog::error("a handler threw (a bug): {}", what);
  respond(error_response(make_error(ErrorKind::internal, "internal error: " + what)));
}

void Api::record(const std::string& route, int status,
                 std::chrono::steady_clock::time_point since) {
  metrics_.on_request(
      route, status,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
}

void Api::handle_route(const Route& route, HttpRequest& request, const nlohmann::json* body,
                       const RequestContext& context, Respond& respond) {
  switch (route.id) {
    case RouteId::server_metadata:
      return respond(server_metadata());
    case RouteId::shm_status:
    case RouteId::shm_register:
    case RouteId::shm_unregister:
    case RouteId::cuda_shm:
      return respond(shared_memory(route, body));
    case RouteId::health_live:
      return respond(json_response(http::status::ok, {{"live", true}}));
    case RouteId::health_ready:
      return respond(ready_response(false));
    case RouteId::model_ready:
      return respond(ready_response(true));
    case RouteId::model_metadata:
      return respond(model_metadata());
    case RouteId::model_config:
      return respond(model_config());
    case RouteId::model_stats:
      return respond(
          json_response(http::status::ok,
                        {{"model_stats", {stats_.to_json(options_.model_name, kModelVersion)}}}));
    case RouteId::metrics:
      return respond(metrics());
    case RouteId::tokenize:
      return tokenize(request, *body, std::move(respond));
    case RouteId::detokenize:
      return respond(detokenize(*body));
    case RouteId::infer:
      return infer(request, *body, context, std::move(respond));
    case RouteId::generate:
      return generate(request, *body, context, std::move(respond));
    case RouteId::generate_stream:
      return generate_stream(request, *body, context, std::move(respond));
    case RouteId::openai_completions:
    case RouteId::openai_chat:
      return openai_generate(request, *body, context, route.id == RouteId::openai_chat,
                             std::move(respond));
    case RouteId::openai_models:
      return respond(
          json_response(http::status::ok, openai::models(options_.model_name, started_unix_)));
    case RouteId::admin_workers:
    case RouteId::admin_policy:
    case RouteId::admin_recycle:
    case RouteId::admin_reload:
    case RouteId::admin_fault:
    case RouteId::admin_quarantine:
      return handle_admin(route, request, body, respond);
    case RouteId::status_page:
      return respond(status_page_response(request.version()));
    case RouteId::admin_events:
      return events_.subscribe(context.open_stream(), std::move(respond), context);
    case RouteId::method_not_allowed: {
      auto res = json_response(http::status::method_not_allowed,
                               {{"error", "method not allowed; use " + route.allow}});
      res.set(http::field::allow, route.allow);
      return respond(std::move(res));
    }
    case RouteId::not_found:
      break;
  }
  respond(error_response(
      make_error(ErrorKind::not_found, "no route for " + std::string(request.target()))));
}

HttpResponse Api::server_metadata() const {
  json extensions = {"binary_tensor_data", "classification", "parameters",
                     "schedule_policy",    "statistics",     "generate"};
  if (shm_.allowed()) extensions.push_back("system_shared_memory");
  return json_response(http::status::ok,
                       {{"name", "respawn"}, {"version", kVersion}, {"extensions", extensions}});
}

HttpResponse Api::shared_memory(const Route& route, const json* body) {
  const auto answer = [](std::optional<Error> error) {
    return error ? error_response(*error) : json_response(http::status::ok, json::object());
  };
  switch (route.id) {
    case RouteId::shm_status: {
      auto status = shm_.status(route.item);
      return status ? json_response(http::status::ok, *status) : error_response(status.error());
    }
    case RouteId::shm_register:
      return answer(shm_.register_region(route.item, body ? *body : json()));
    case RouteId::shm_unregister:
      return answer(shm_.unregister(route.item));
    default:
      return error_response(make_error(
          ErrorKind::bad_input,
          "CUDA shared memory is not supported: the supervisor holds no GPU memory (use system "
          "shared memory, --allow-client-shm)"));
  }
}

HttpResponse Api::ready_response(bool model_route) const {
  const bool ready = scheduler_.accepting() && scheduler_.manager().ready();
  json body = {{"ready", ready}};
  if (model_route) body["name"] = options_.model_name;
  if (!scheduler_.accepting()) body["state"] = "shutting_down";
  if (!ready && scheduler_.accepting()) {
    body["state"] = scheduler_.manager().breaker_state() == CircuitBreaker::State::open
                        ? "breaker_open"
                        : "worker_starting";
  }
  return json_response(ready ? http::status::ok : http::status::service_unavailable, body);
}

namespace {

std::string platform_of(const json& model_info) {
  return json_get<std::string>(model_info, "model_format", "") == "aoti_package"
             ? "pytorch_aotinductor"
             : "pytorch_torchscript";
}

}  // namespace

HttpResponse Api::model_config() const {
  const auto& manager = scheduler_.manager();
  const auto& info = manager.model_info();
  return json_response(
      http::status::ok,
      triton::model_config(info,
                           {options_.model_name, platform_of(info), manager.policy().max_batch_size,
                            manager.policy().max_batch_delay_us, options_.labels}));
}

HttpResponse Api::model_metadata() const {
  const auto& info = scheduler_.manager().model_info();
  json body = {{"name", options_.model_name},
               {"versions", {kModelVersion}},
               {"platform", platform_of(info)},
               {"inputs", json::array()},
               {"outputs", json::array()}};
  if (info.is_object()) {
    for (const char* key : {"inputs", "outputs", "task", "device", "max_context"}) {
      if (info.contains(key)) body[key] = info[key];
    }
  }
  return json_response(http::status::ok, body);
}

HttpResponse Api::metrics() {
  const auto& manager = scheduler_.manager();
  const auto worker = manager.current_worker();
  metrics_.set_worker_state(worker.state, worker.uptime_s);
  metrics_.set_breaker_state(manager.breaker_state());
  metrics_.set_policy(manager.policy());  // PATCH /admin/policy changes it there
  metrics_.set_build_info(
      kVersion, json_get<std::string>(manager.model_info(), "libtorch_version", "unknown"));
  metrics_.set_process(read_process_stats());
  const auto memory = scheduler_.manager().current_memory();
  metrics_.set_worker_rss(memory.rss_bytes);
  metrics_.set_worker_gpu(memory.gpu_bytes);
  const auto& fork_server = scheduler_.manager().fork_server();
  metrics_.set_fork_server(fork_server && fork_server->state() == ForkServer::State::ready,
                           fork_server ? fork_server->rss_bytes() : 0);
  scheduler_.manager().quarantine_size();  // expired entries leave the gauge too
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = metrics_.render();
  return res;
}

void Api::submit(Job job, const RequestContext& context, Respond& respond) {
  // The statistics extension: every request that runs the model, timed from here.
  using Clock = std::chrono::steady_clock;
  auto dispatched = std::make_shared<std::optional<Clock::time_point>>();
  job.on_dispatch = [dispatched] { *dispatched = Clock::now(); };
  job.done = [this, done = std::move(job.done), dispatched,
              tensors = job.type == ipc::MessageType::infer,
              submitted = Clock::now()](JobOutcome outcome) {
    const auto now = Clock::now();
    if (!outcome) {
      stats_.on_failure(now - submitted);
    } else {
      // Only a tensor answer's small JSON is read again; a generate's may be long (logprobs).
      const auto meta = tensors ? parse_json(outcome->json) : json();
      std::optional<std::chrono::nanoseconds> queued;
      if (*dispatched) queued = **dispatched - submitted;
      stats_.on_success(now - submitted, queued, ModelStats::compute_from(meta),
                        json_get<std::size_t>(meta, "batch_size", 1));
    }
    done(std::move(outcome));
  };
  auto id = scheduler_.submit(std::move(job));
  if (!id) {
    stats_.on_failure(std::chrono::nanoseconds(0));
    return respond(error_response(id.error()));
  }
  if (context.on_disconnect) {
    context.on_disconnect([this, id = *id] { scheduler_.cancel(id); });
  }
}

void Api::infer(HttpRequest& request, const json& body, const RequestContext& context,
                Respond respond) {
  auto selection = triton::requested_outputs(body, shm_);
  if (!selection) return respond(error_response(selection.error()));
  Job job;
  job.type = ipc::MessageType::infer;
  job.route = route_label(RouteId::infer);
  if (auto error = read_job_options(request, json_field(body, "parameters"), Units::triton, job)) {
    return respond(error_response(*error));
  }
  // Checked by handle(): the header is a length within the body.
  const auto json_size = triton::json_header_length(request)->value_or(request.body().size());
  std::string blob;
  auto packed = triton::pack_inputs(json_field(body, "inputs"),
                                    std::string_view(request.body()).substr(json_size), blob, shm_);
  if (!packed) return respond(error_response(packed.error()));
  json meta = {{"inputs", json::array()}};
  for (const auto& t : packed->tensors) meta["inputs"].push_back(to_json(t));
  if (auto error = add_fault(request, meta)) return respond(error_response(*error));
  job.json = meta.dump();
  if (packed->in_place) {  // the body past its JSON header is the blob: no copy
    job.binary = std::make_shared<const std::string>(std::move(request.body()));
    job.binary_offset = json_size;
  } else {
    job.binary = std::make_shared<const std::string>(std::move(blob));
  }
  job.weight = job.tensor_bytes().size();
  // Raw tensors can be several times larger than their JSON text ("1," is an 8-byte FP64).
  if (ipc::kHeaderSize + job.json.size() + job.weight > ipc::kDefaultMaxFrameBytes) {
    return respond(error_response(make_error(
        ErrorKind::too_large, "the input tensors exceed the worker's frame limit of " +
                                  std::to_string(ipc::kDefaultMaxFrameBytes) + " bytes")));
  }
  json reply = {{"model_name", options_.model_name}, {"model_version", kModelVersion}};
  if (json_field(body, "id").is_string()) reply["id"] = body["id"];
  job.done = [this, respond, selection = std::move(*selection), reply](JobOutcome outcome) mutable {
    if (!outcome) return respond(error_response(outcome.error()));
    const auto meta = parse_json(outcome->json);
    auto res = triton::infer_response(std::move(reply), meta, outcome->binary, selection, labels_);
    if (!res) return respond(error_response(res.error()));
    respond(with_worker_pid(std::move(*res), meta));
  };
  submit(std::move(job), context, respond);
}

Result<Api::GenerateJob> Api::generate_job(const HttpRequest& request, const json& body) const {
  if (!json_field(body, "text_input").is_string()) {
    return make_error(ErrorKind::bad_input, "'text_input' must be a string");
  }
  const auto merged = generate_parameters(body);
  auto params = parse_generate_request(body["text_input"], merged);
  if (!params) return params.error();
  Job job;
  job.type = ipc::MessageType::generate;
  if (auto error = read_job_options(request, merged, Units::triton, job)) return *error;
  return GenerateJob{std::move(*params), std::move(job)};
}

void Api::generate(const HttpRequest& request, const json& body, const RequestContext& context,
                   Respond respond) {
  auto job = generate_job(request, body);
  if (!job) return respond(error_response(job.error()));
  job->job.route = route_label(RouteId::generate);
  job->job.done = [respond, name = options_.model_name](JobOutcome outcome) {
    auto result = generate_result(outcome);
    if (!result) return respond(error_response(result.error()));
    auto body = without_pid(*result);
    body["model_name"] = name;
    body["model_version"] = kModelVersion;
    respond(with_worker_pid(json_response(http::status::ok, body), *result));
  };
  submit_generate(request, std::move(job->params), true, "text_input", std::move(job->job), context,
                  respond);
}

// Server-Sent Events: one `data: {...}` event per chunk of text as the worker produces it,
// then one with finish_reason and usage (and an empty text_output); a failure after the first
// event ends the stream with an event {"error": ...}.
void Api::generate_stream(const HttpRequest& request, const json& body,
                          const RequestContext& context, Respond respond) {
  auto job = generate_job(request, body);
  if (!job) return respond(error_response(job.error()));
  job->job.route = route_label(RouteId::generate_stream);
  const json head = {{"model_name", options_.model_name}, {"model_version", kModelVersion}};
  StreamFormat format;
  format.chunk = [head](std::string_view text, const json&) {
    json event = head;
    event["text_output"] = text;
    return sse_event(event);
  };
  format.end = [head](const Result<json>& result) {
    json event = head;
    if (!result) {
      event["error"] = result.error().message;
      return sse_event(event);
    }
    event.update(without_pid(*result));
    event["text_output"] = "";
    return sse_event(event);
  };
  stream_job(job->job, context.open_stream(), respond, std::move(format),
             [this, since = std::chrono::steady_clock::now()](int status) {
               record("generate_stream", status, since);
             });
  submit_generate(request, std::move(job->params), true, "text_input", std::move(job->job), context,
                  respond);
}

void Api::submit_generate(const HttpRequest& request, GenerateRequest params,
                          bool add_special_tokens, const char* prompt_param, Job job,
                          const RequestContext& context, Respond respond,
                          std::function<Result<std::string>()> render) {
  json ipc_extra = json::object();
  if (auto error = add_fault(request, ipc_extra)) return respond(error_response(*error));
  const auto max_context =
      json_get<std::size_t>(scheduler_.manager().model_info(), "max_context", 1024);
  const bool offload =
      !text_->byte_level() && (params.prompt.size() >= kTokenizeOffloadBytes ||
                               (render && request.body().size() >= kTokenizeOffloadBytes));
  // Pure: runs on the helper thread for a long prompt.
  auto prepare = [text = text_, params = std::move(params), add_special_tokens, prompt_param,
                  ipc_extra = std::move(ipc_extra), max_context, job = std::move(job),
                  render = std::move(render)]() mutable -> Result<Job> {
    if (render) {
      auto prompt = render();
      if (!prompt) return prompt.error();
      params.prompt = std::move(*prompt);
    }
    if (!params.prompt_ids.empty()) {
      // Ids from the client: the tokenizer must know them.
      if (auto known = text->decode({params.prompt_ids.begin(), params.prompt_ids.end()}); !known) {
        return make_error(ErrorKind::bad_input,
                          std::string("'") + prompt_param + "': " + known.error().message);
      }
    } else if (!text->byte_level()) {
      for (const auto id : text->encode(params.prompt, add_special_tokens)) {
        params.prompt_ids.push_back(id);
      }
    }
    if (!text->byte_level()) {
      for (const auto id : text->eos_token_ids()) params.stop_token_ids.push_back(id);
      // The model sees at most max_context tokens: a longer prompt is refused, and the
      // completion is cut to what fits (finish_reason "length").
      const std::size_t n = params.prompt_ids.size();
      if (n >= max_context) {
        return make_error(ErrorKind::bad_input,
                          std::string("'") + prompt_param + "' is " + std::to_string(n) +
                              " tokens; this model's context is " + std::to_string(max_context) +
                              " tokens, with room for at least one generated token");
      }
      params.max_tokens = static_cast<int>(
          std::min<std::size_t>(static_cast<std::size_t>(params.max_tokens), max_context - n));
    }
    auto ipc_request = to_json(params);
    ipc_request.update(ipc_extra);
    job.json = ipc_request.dump();
    job.weight = memory_weight(params, max_context);
    return std::move(job);
  };
  if (!offload) {
    auto ready = prepare();
    if (!ready) return respond(error_response(ready.error()));
    return submit(std::move(*ready), context, respond);
  }
  // Everything that may hold the session (the job's callbacks, respond, context) moves on to
  // the I/O thread, so that the session is only ever released there.
  boost::asio::post(parse_pool_, [this, prepare = std::move(prepare), context,
                                  respond = std::move(respond)]() mutable {
    auto ready = std::make_shared<Result<Job>>(prepare());
    boost::asio::post(scheduler_.io(),
                      [this, ready = std::move(ready), prepare = std::move(prepare),
                       context = std::move(context), respond = std::move(respond)]() mutable {
                        run_guarded(metrics_, respond, [&] {
                          if (!*ready) return respond(error_response(ready->error()));
                          submit(std::move(**ready), context, respond);
                        });
                      });
  });
}

std::optional<Error> Api::add_fault(const HttpRequest& request, json& ipc_request) const {
  if (!options_.enable_fault_injection) return std::nullopt;
  const std::string fault(request["X-Respawn-Fault"]);
  if (fault.empty()) return std::nullopt;
  if (sanitize_utf8(fault) != fault) {
    return make_error(ErrorKind::bad_input, "X-Respawn-Fault must be UTF-8 text");
  }
  ipc_request["fault"] = fault;
  return std::nullopt;
}

void Api::openai_generate(const HttpRequest& request, const json& body,
                          const RequestContext& context, bool chat, Respond respond) {
  const auto kind = chat ? openai::Kind::chat : openai::Kind::completion;
  const bool own_template = chat && text_->has_chat_template();
  auto parsed = openai::parse_request(kind, body, options_.model_name, !own_template);
  if (!parsed) return respond(error_response(parsed.error()));
  std::function<Result<std::string>()> render;
  if (own_template) {
    // Rendered from the body read again in the client's key order: a template's tojson writes
    // keys in that order, as transformers does.
    render = [text = text_, raw = std::string(request.body())]() -> Result<std::string> {
      const auto ordered = nlohmann::ordered_json::parse(raw, nullptr, false);
      return text->render_chat(ordered["messages"], true);
    };
  }
  Job job;
  job.type = ipc::MessageType::generate;
  job.route = route_label(chat ? RouteId::openai_chat : RouteId::openai_completions);
  if (auto error = read_job_options(request, body, Units::respawn, job)) {
    return respond(error_response(*error));
  }
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const openai::Ids ids{std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(started_unix_) +
                            "-" + std::to_string(next_openai_id_++),
                        std::chrono::duration_cast<std::chrono::seconds>(now).count(),
                        options_.model_name};
  // A chat template brings its own special tokens; a plain prompt gets the tokenizer's (BOS).
  const bool add_special_tokens = !own_template;
  const char* prompt_param = chat ? "messages" : "prompt";
  if (!parsed->stream) {
    job.done = [respond, kind, ids, text = text_](JobOutcome outcome) {
      auto result = generate_result(outcome);
      if (!result) return respond(error_response(result.error()));
      auto answer = openai::response(kind, ids, *result);
      if (result->contains("logprobs")) {
        answer["choices"][0]["logprobs"] = openai::logprobs(
            kind, (*result)["logprobs"], [&](std::int64_t id) { return text->token_text(id); });
      }
      respond(with_worker_pid(json_response(http::status::ok, answer), *result));
    };
    return submit_generate(request, std::move(parsed->params), add_special_tokens, prompt_param,
                           std::move(job), context, respond, std::move(render));
  }
  StreamFormat format;
  auto first = std::make_shared<bool>(true);
  format.chunk = [kind, ids, first, text_model = text_](std::string_view text,
                                                        const json& logprobs) {
    auto event = openai::chunk(kind, ids, text, std::exchange(*first, false));
    if (!logprobs.is_null()) {
      event["choices"][0]["logprobs"] = openai::logprobs(
          kind, logprobs, [&](std::int64_t id) { return text_model->token_text(id); });
    }
    return sse_event(event);
  };
  format.end = [kind, ids, first, usage = parsed->include_usage](const Result<json>& result) {
    std::string events;
    if (result) {
      // A reply with no text still opens with the assistant's role, as OpenAI's streams do.
      if (kind == openai::Kind::chat && *first) {
        events = sse_event(openai::chunk(kind, ids, "", std::exchange(*first, false)));
      }
      events += sse_event(openai::final_chunk(kind, ids, *result));
      if (usage) events += sse_event(openai::usage_chunk(kind, ids, *result));
    } else {
      events = sse_event(openai::error_body(static_cast<int>(http_status(result.error().kind)),
                                            result.error().message));
    }
    return events + "data: [DONE]\n\n";
  };
  const std::string label = chat ? "openai_chat" : "openai_completions";
  stream_job(job, context.open_stream(), respond, std::move(format),
             [this, label, since = std::chrono::steady_clock::now()](int status) {
               record(label, status, since);
             });
  submit_generate(request, std::move(parsed->params), add_special_tokens, prompt_param,
                  std::move(job), context, respond, std::move(render));
}

}  // namespace respawn
