#include "http/generation.hpp"

#include "respawn/json_util.hpp"

namespace respawn {

using nlohmann::json;

Result<json> generate_result(const JobOutcome& outcome) {
  if (!outcome) return outcome.error();
  auto r = parse_json(outcome->json);
  if (!json_field(r, "text_output").is_string()) {
    return make_error(ErrorKind::internal, "the worker sent a malformed generate result");
  }
  const int prompt = json_get(r, "prompt_tokens", 0);
  const int completion = json_get(r, "completion_tokens", 0);
  json out{{"text_output", r["text_output"]},
           {"finish_reason", json_get<std::string>(r, "finish_reason", "length")},
           {"seed", json_get<std::uint64_t>(r, "seed", 0)},
           {"pid", json_get<std::int64_t>(r, "pid", 0)},
           {"batch_size", json_get<std::int64_t>(r, "batch_size", 1)},
           {"usage",
            {{"prompt_tokens", prompt},
             {"completion_tokens", completion},
             {"total_tokens", prompt + completion}}}};
  if (json_field(r, "logprobs").is_array()) out["logprobs"] = std::move(r["logprobs"]);
  return out;
}

std::string sse_event(const json& data) {
  return "data: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

void stream_job(Job& job, std::shared_ptr<StreamSink> sink, Respond respond, StreamFormat format,
                std::function<void(int status)> ended) {
  auto started = std::make_shared<bool>(false);
  const auto start = [sink, started] {
    if (!std::exchange(*started, true)) sink->start(http::status::ok, "text/event-stream");
  };
  job.on_text = [sink, start, chunk = format.chunk](std::string_view text, const json& logprobs) {
    start();
    sink->write(chunk(text, logprobs));
  };
  job.done = [sink, start, started, respond, end = std::move(format.end),
              ended = std::move(ended)](JobOutcome outcome) {
    const auto result = generate_result(outcome);
    if (!result && !*started) return respond(error_response(result.error()));
    start();
    sink->write(end(result));
    sink->finish();
    ended(result ? 200 : static_cast<int>(http_status(result.error().kind)));
  };
}

}  // namespace respawn
