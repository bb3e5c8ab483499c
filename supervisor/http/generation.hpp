#pragma once
// What the KServe generate routes and the OpenAI routes share: reading the worker's generate
// result, and wiring a generate job to a Server-Sent Events stream. Thread-compatible (used on
// the I/O thread).
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "http/http_types.hpp"
#include "lifecycle/job.hpp"

namespace respawn {

// The worker's generate result as {text_output, finish_reason, seed, pid, usage{prompt_tokens,
// completion_tokens, total_tokens}} (and the worker's logprobs when it sent them), or the
// error that replaced it.
Result<nlohmann::json> generate_result(const JobOutcome& outcome);

// `data: <json>\n\n`
std::string sse_event(const nlohmann::json& data);

struct StreamFormat {
  // The event(s) for one chunk of text, and the logprobs of its tokens (null unless asked).
  std::function<std::string(std::string_view text, const nlohmann::json& logprobs)> chunk;
  // The closing event(s): after the result, or after a failure once the stream had started.
  std::function<std::string(const Result<nlohmann::json>& result)> end;
};

// Makes `job` answer as a stream: the first chunk starts a 200 text/event-stream response; an
// error before that goes to `respond` as an ordinary error response. `ended(status)` is
// called once the stream is closed (for metrics).
void stream_job(Job& job, std::shared_ptr<StreamSink> sink, Respond respond, StreamFormat format,
                std::function<void(int status)> ended);

}  // namespace respawn
