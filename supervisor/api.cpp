#include "api.hpp"

#include <chrono>

#include "generation.hpp"
#include "openai.hpp"
#include "respawn/generate_request.hpp"
#include "respawn/json_util.hpp"
#include "respawn/proc_stats.hpp"
#include "respawn/tensor_codec.hpp"

#include <spdlog/spdlog.h>

namespace respawn {
namespace {

using nlohmann::json;
constexpr const char* kVersion = "0.1.0";
constexpr const char* kModelVersion = "1";

// Triton's generate extension takes sampling parameters at the top level or under
// "parameters"; the latter wins when both name a key.
json generate_parameters(const json& body) {
  json params = json::object();
  for (const auto& [key, value] : body.items()) {
    if (key != "text_input" && key != "parameters") params[key] = value;
  }
  if (body.contains("parameters") && body["parameters"].is_object()) {
    for (const auto& [key, value] : body["parameters"].items()) params[key] = value;
  }
  return params;
}

// Which outputs the client asked for (KServe "outputs": [{"name": ...}]); empty = all.
Result<std::vector<std::string>> requested_outputs(const json& body) {
  std::vector<std::string> names;
  if (!body.contains("outputs")) return names;
  if (!body["outputs"].is_array())
    return make_error(ErrorKind::bad_input, "'outputs' must be an array");
  for (const auto& o : body["outputs"]) {
    if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) {
      return make_error(ErrorKind::bad_input, "each of 'outputs' needs a string 'name'");
    }
    names.push_back(o["name"]);
  }
  return names;
}

Result<json> infer_outputs(const json& meta, const std::string& blob,
                           const std::vector<std::string>& wanted) {
  auto tensors = parse_tensor_list(json_field(meta, "outputs"), blob);
  if (!tensors) {
    return make_error(ErrorKind::internal,
                      "the worker sent a malformed result: " + tensors.error().message);
  }
  json outputs = json::array();
  for (const auto& name : wanted) {
    const auto found = std::find_if(tensors->begin(), tensors->end(),
                                    [&](const TensorMeta& t) { return t.name == name; });
    if (found == tensors->end()) {
      return make_error(ErrorKind::bad_input, "the model has no output '" + name + "'");
    }
  }
  for (const auto& t : *tensors) {
    if (wanted.empty() || std::find(wanted.begin(), wanted.end(), t.name) != wanted.end()) {
      outputs.push_back(tensor_to_kserve_json(t, blob));
    }
  }
  return outputs;
}

// A request's own deadline and priority: `timeout` (ms) and `priority` (0..9, higher first)
// from the body's parameters, else the X-Respawn-Timeout-Ms / X-Respawn-Priority headers.
std::optional<Error> read_job_options(const HttpRequest& request, const json& params, Job& job) {
  struct Option {
    const char* key;
    const char* header;
    std::int64_t min, max;
  };
  const Option options[] = {{"timeout", "X-Respawn-Timeout-Ms", 1, 86400000},
                            {"priority", "X-Respawn-Priority", 0, kPriorityLevels - 1}};
  for (const auto& o : options) {
    json value = json_field(params, o.key);
    if (value.is_null() && !request[o.header].empty()) {
      value = parse_json(std::string(request[o.header]));
      if (value.is_discarded()) value = std::string(request[o.header]);
    }
    if (value.is_null()) continue;
    if (!value.is_number_integer() || value.get<std::int64_t>() < o.min ||
        value.get<std::int64_t>() > o.max) {
      return make_error(ErrorKind::bad_input,
                        std::string("'") + o.key + "' must be an integer between " +
                            std::to_string(o.min) + " and " + std::to_string(o.max));
    }
    if (std::string_view(o.key) == "timeout") {
      job.timeout = std::chrono::milliseconds(value.get<std::int64_t>());
    } else {
      job.priority = value.get<int>();
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
      options_(options) {}

void Api::handle(const HttpRequest& request, const RequestContext& context, Respond respond) {
  const auto route = match_route(request.method_string(), request.target());
  Respond recorded = [this, label = std::string(route.label()),
                      started = std::chrono::steady_clock::now(),
                      respond = std::move(respond)](HttpResponse res) {
    record(label, res.result_int(), started);
    respond(std::move(res));
  };
  handle_route(route, request, context, recorded);
}

void Api::record(const std::string& route, int status,
                 std::chrono::steady_clock::time_point since) {
  metrics_.on_request(
      route, status,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
}

void Api::handle_route(const Route& route, const HttpRequest& request,
                       const RequestContext& context, Respond& respond) {
  if (!route.model.empty() && route.model != options_.model_name) {
    return respond(
        error_response(make_error(ErrorKind::not_found, "unknown model '" + route.model + "'")));
  }
  switch (route.id) {
    case RouteId::server_metadata:
      return respond(server_metadata());
    case RouteId::health_live:
      return respond(json_response(http::status::ok, {{"live", true}}));
    case RouteId::health_ready:
      return respond(ready_response(false));
    case RouteId::model_ready:
      return respond(ready_response(true));
    case RouteId::model_metadata:
      return respond(model_metadata());
    case RouteId::metrics:
      return respond(metrics());
    case RouteId::infer:
      return infer(request, context, std::move(respond));
    case RouteId::generate:
      return generate(request, context, std::move(respond));
    case RouteId::generate_stream:
      return generate_stream(request, context, std::move(respond));
    case RouteId::openai_completions:
    case RouteId::openai_chat:
      return openai_generate(request, context, route.id == RouteId::openai_chat,
                             std::move(respond));
    case RouteId::openai_models:
      return respond(
          json_response(http::status::ok, openai::models(options_.model_name, started_unix_)));
    case RouteId::admin_workers:
    case RouteId::admin_policy:
    case RouteId::admin_recycle:
    case RouteId::admin_fault:
      if (auto refused = admin_refusal(request, context)) return respond(std::move(*refused));
      return handle_admin(route, request, respond);
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
  return json_response(http::status::ok,
                       {{"name", "respawn"}, {"version", kVersion}, {"extensions", {"generate"}}});
}

HttpResponse Api::ready_response(bool model_route) const {
  const bool ready = scheduler_.accepting() && scheduler_.manager().ready();
  json body = {{"ready", ready}};
  if (model_route) body["name"] = options_.model_name;
  if (!scheduler_.accepting()) body["state"] = "shutting_down";
  if (!ready && scheduler_.accepting()) {
    body["state"] = scheduler_.manager().status()["breaker"]["state"] == "open" ? "breaker_open"
                                                                                : "worker_starting";
  }
  return json_response(ready ? http::status::ok : http::status::service_unavailable, body);
}

HttpResponse Api::model_metadata() const {
  const auto& info = scheduler_.manager().model_info();
  json body = {{"name", options_.model_name},
               {"versions", {kModelVersion}},
               {"platform", "pytorch_torchscript"},
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
  const auto status = scheduler_.manager().status();
  metrics_.set_worker_rss(json_get<std::uint64_t>(status, "rss_bytes", 0));
  metrics_.set_worker_gpu(json_get<std::uint64_t>(status, "gpu_memory_bytes", 0));
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = metrics_.render();
  return res;
}

void Api::submit(Job job, const RequestContext& context, Respond& respond) {
  auto id = scheduler_.submit(std::move(job));
  if (!id) return respond(error_response(id.error()));
  if (context.on_disconnect) {
    context.on_disconnect([this, id = *id] { scheduler_.cancel(id); });
  }
}

void Api::infer(const HttpRequest& request, const RequestContext& context, Respond respond) {
  auto body = parse_json_body(request);
  if (!body) return respond(error_response(body.error()));
  auto wanted = requested_outputs(*body);
  if (!wanted) return respond(error_response(wanted.error()));
  Job job;
  job.type = ipc::MessageType::infer;
  if (auto error = read_job_options(request, json_field(*body, "parameters"), job)) {
    return respond(error_response(*error));
  }
  auto inputs = pack_kserve_inputs(json_field(*body, "inputs"), job.binary);
  if (!inputs) return respond(error_response(inputs.error()));
  json meta = {{"inputs", json::array()}};
  for (const auto& t : *inputs) meta["inputs"].push_back(to_json(t));
  add_fault(request, meta);
  job.json = meta.dump();
  job.weight = job.binary.size();
  // Raw tensors can be several times larger than their JSON text ("1," is an 8-byte FP64).
  if (ipc::kHeaderSize + job.json.size() + job.binary.size() > ipc::kDefaultMaxFrameBytes) {
    return respond(error_response(make_error(
        ErrorKind::too_large, "the input tensors exceed the worker's frame limit of " +
                                  std::to_string(ipc::kDefaultMaxFrameBytes) + " bytes")));
  }
  json reply = {{"model_name", options_.model_name}, {"model_version", kModelVersion}};
  if (body->contains("id") && (*body)["id"].is_string()) reply["id"] = (*body)["id"];
  job.done = [respond, wanted = std::move(*wanted), reply](JobOutcome outcome) mutable {
    if (!outcome) return respond(error_response(outcome.error()));
    const auto meta = parse_json(outcome->json);
    auto outputs = infer_outputs(meta, outcome->binary, wanted);
    if (!outputs) return respond(error_response(outputs.error()));
    reply["outputs"] = std::move(*outputs);
    respond(with_worker_pid(json_response(http::status::ok, reply), meta));
  };
  submit(std::move(job), context, respond);
}

Result<Job> Api::generate_job(const HttpRequest& request) const {
  auto body = parse_json_body(request);
  if (!body) return body.error();
  if (!json_field(*body, "text_input").is_string()) {
    return make_error(ErrorKind::bad_input, "'text_input' must be a string");
  }
  const auto merged = generate_parameters(*body);
  auto params = parse_generate_request((*body)["text_input"], merged);
  if (!params) return params.error();
  Job job;
  job.type = ipc::MessageType::generate;
  if (auto error = read_job_options(request, merged, job)) return *error;
  set_generate_payload(request, *params, job);
  return job;
}

void Api::generate(const HttpRequest& request, const RequestContext& context, Respond respond) {
  auto job = generate_job(request);
  if (!job) return respond(error_response(job.error()));
  job->done = [respond, name = options_.model_name](JobOutcome outcome) {
    auto result = generate_result(outcome);
    if (!result) return respond(error_response(result.error()));
    auto body = without_pid(*result);
    body["model_name"] = name;
    respond(with_worker_pid(json_response(http::status::ok, body), *result));
  };
  submit(std::move(*job), context, respond);
}

// Server-Sent Events: one `data: {...}` event per chunk of text as the worker produces it,
// then one with finish_reason and usage (and an empty text_output); a failure after the first
// event ends the stream with an event {"error": ...}.
void Api::generate_stream(const HttpRequest& request, const RequestContext& context,
                          Respond respond) {
  auto job = generate_job(request);
  if (!job) return respond(error_response(job.error()));
  const json head = {{"model_name", options_.model_name}, {"model_version", kModelVersion}};
  StreamFormat format;
  format.chunk = [head](std::string_view text) {
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
  stream_job(*job, context.open_stream(), respond, std::move(format),
             [this, since = std::chrono::steady_clock::now()](int status) {
               record("generate_stream", status, since);
             });
  submit(std::move(*job), context, respond);
}

void Api::set_generate_payload(const HttpRequest& request, const GenerateRequest& params,
                               Job& job) const {
  auto ipc_request = to_json(params);
  add_fault(request, ipc_request);
  job.json = ipc_request.dump();
  const auto& info = scheduler_.manager().model_info();
  job.weight = memory_weight(params, json_get<std::size_t>(info, "max_context", 1024));
}

void Api::add_fault(const HttpRequest& request, json& ipc_request) const {
  if (!options_.enable_fault_injection) return;
  const auto fault = request["X-Respawn-Fault"];
  if (!fault.empty()) ipc_request["fault"] = std::string(fault);
}

// OpenAI clients read errors as {"error": {"message", "type", ...}}: every error answer of a
// /v1 route, from parsing to a failed worker, is rewritten into that shape here.
void Api::openai_generate(const HttpRequest& request, const RequestContext& context, bool chat,
                          Respond respond) {
  Respond answer = [respond = std::move(respond)](HttpResponse res) {
    if (res.result_int() >= 400) {
      const auto message = json_get<std::string>(parse_json(res.body()), "error", res.body());
      res.body() = openai::error_body(res.result_int(), message).dump();
    }
    respond(std::move(res));
  };
  const auto kind = chat ? openai::Kind::chat : openai::Kind::completion;
  auto body = parse_json_body(request);
  if (!body) return answer(error_response(body.error()));
  auto parsed = openai::parse_request(kind, *body, options_.model_name);
  if (!parsed) return answer(error_response(parsed.error()));
  Job job;
  job.type = ipc::MessageType::generate;
  if (auto error = read_job_options(request, *body, job)) return answer(error_response(*error));
  set_generate_payload(request, parsed->params, job);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const openai::Ids ids{std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(started_unix_) +
                            "-" + std::to_string(next_openai_id_++),
                        std::chrono::duration_cast<std::chrono::seconds>(now).count(),
                        options_.model_name};
  if (!parsed->stream) {
    job.done = [answer, kind, ids](JobOutcome outcome) {
      auto result = generate_result(outcome);
      if (!result) return answer(error_response(result.error()));
      answer(with_worker_pid(json_response(http::status::ok, openai::response(kind, ids, *result)),
                             *result));
    };
    return submit(std::move(job), context, answer);
  }
  StreamFormat format;
  auto first = std::make_shared<bool>(true);
  format.chunk = [kind, ids, first](std::string_view text) {
    return sse_event(openai::chunk(kind, ids, text, std::exchange(*first, false)));
  };
  format.end = [kind, ids, usage = parsed->include_usage](const Result<json>& result) {
    std::string events;
    if (result) {
      events = sse_event(openai::final_chunk(kind, ids, *result));
      if (usage) events += sse_event(openai::usage_chunk(kind, ids, *result));
    } else {
      events = sse_event(openai::error_body(static_cast<int>(http_status(result.error().kind)),
                                            result.error().message));
    }
    return events + "data: [DONE]\n\n";
  };
  const std::string label = chat ? "openai_chat" : "openai_completions";
  stream_job(job, context.open_stream(), answer, std::move(format),
             [this, label, since = std::chrono::steady_clock::now()](int status) {
               record(label, status, since);
             });
  submit(std::move(job), context, answer);
}

}  // namespace respawn
