#include "api.hpp"

#include <chrono>

#include "respawn/generate_request.hpp"
#include "respawn/json_util.hpp"
#include "respawn/proc_stats.hpp"
#include "respawn/tensor_codec.hpp"

namespace respawn {
namespace {

using nlohmann::json;
constexpr const char* kVersion = "0.1.0";
constexpr const char* kModelVersion = "1";

Result<json> parse_body(const HttpRequest& request) {
  auto body = parse_json(request.body());
  if (body.is_discarded()) {
    return make_error(ErrorKind::bad_input,
                      "request body is not valid JSON (or nests deeper than " +
                          std::to_string(kMaxJsonDepth) + " levels)");
  }
  if (!body.is_object())
    return make_error(ErrorKind::bad_input, "request body must be a JSON object");
  return body;
}

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

Result<json> infer_outputs(const ipc::Frame& frame, const std::vector<std::string>& wanted) {
  auto tensors = parse_tensor_list(json_field(parse_json(frame.json), "outputs"), frame.binary);
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
      outputs.push_back(tensor_to_kserve_json(t, frame.binary));
    }
  }
  return outputs;
}

}  // namespace

void Api::handle(const HttpRequest& request, const RequestContext& context, Respond respond) {
  const auto route = match_route(request.method_string(), request.target());
  Respond recorded = [this, label = std::string(route.label()),
                      started = std::chrono::steady_clock::now(),
                      respond = std::move(respond)](HttpResponse res) {
    metrics_.on_request(
        label, res.result_int(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    respond(std::move(res));
  };
  handle_route(route, request, context, recorded);
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
      return infer(request, std::move(respond));
    case RouteId::generate:
      return generate(request, std::move(respond));
    case RouteId::admin_workers: {
      if (!context.from_loopback) {
        return respond(json_response(http::status::forbidden,
                                     {{"error", "admin calls are only allowed from loopback"}}));
      }
      auto status = scheduler_.slot().status();
      status["queue_depth"] = scheduler_.queued();
      return respond(json_response(http::status::ok, status));
    }
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
  const bool ready = scheduler_.slot().ready();
  json body = {{"ready", ready}};
  if (model_route) body["name"] = options_.model_name;
  if (!ready) body["state"] = to_string(scheduler_.slot().state());
  return json_response(ready ? http::status::ok : http::status::service_unavailable, body);
}

HttpResponse Api::model_metadata() const {
  const auto& info = scheduler_.slot().model_info();
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
  const auto status = scheduler_.slot().status();
  metrics_.set_worker_rss(status.value("rss_bytes", std::uint64_t{0}));
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = metrics_.render();
  return res;
}

void Api::submit(Job job, Respond& respond) {
  if (auto refused = scheduler_.submit(std::move(job))) respond(error_response(*refused));
}

void Api::infer(const HttpRequest& request, Respond respond) {
  auto body = parse_body(request);
  if (!body) return respond(error_response(body.error()));
  auto wanted = requested_outputs(*body);
  if (!wanted) return respond(error_response(wanted.error()));
  Job job;
  job.type = ipc::MessageType::infer;
  auto inputs = pack_kserve_inputs(json_field(*body, "inputs"), job.binary);
  if (!inputs) return respond(error_response(inputs.error()));
  json meta = {{"inputs", json::array()}};
  for (const auto& t : *inputs) meta["inputs"].push_back(to_json(t));
  job.json = meta.dump();
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
    auto outputs = infer_outputs(*outcome, wanted);
    if (!outputs) return respond(error_response(outputs.error()));
    reply["outputs"] = std::move(*outputs);
    respond(json_response(http::status::ok, reply));
  };
  submit(std::move(job), respond);
}

void Api::generate(const HttpRequest& request, Respond respond) {
  auto body = parse_body(request);
  if (!body) return respond(error_response(body.error()));
  if (!body->contains("text_input") || !(*body)["text_input"].is_string()) {
    return respond(
        error_response(make_error(ErrorKind::bad_input, "'text_input' must be a string")));
  }
  auto params = parse_generate_request((*body)["text_input"], generate_parameters(*body));
  if (!params) return respond(error_response(params.error()));
  Job job;
  job.type = ipc::MessageType::generate;
  job.json = to_json(*params).dump();
  job.done = [respond, name = options_.model_name](JobOutcome outcome) {
    if (!outcome) return respond(error_response(outcome.error()));
    const auto r = parse_json(outcome->json);
    if (!json_field(r, "text_output").is_string()) {
      return respond(error_response(
          make_error(ErrorKind::internal, "the worker sent a malformed generate result")));
    }
    const int prompt = json_get(r, "prompt_tokens", 0);
    const int completion = json_get(r, "completion_tokens", 0);
    respond(json_response(http::status::ok,
                          {{"model_name", name},
                           {"model_version", kModelVersion},
                           {"text_output", r["text_output"]},
                           {"finish_reason", json_get<std::string>(r, "finish_reason", "length")},
                           {"seed", json_get<std::uint64_t>(r, "seed", 0)},
                           {"usage",
                            {{"prompt_tokens", prompt},
                             {"completion_tokens", completion},
                             {"total_tokens", prompt + completion}}}}));
  };
  submit(std::move(job), respond);
}

}  // namespace respawn
