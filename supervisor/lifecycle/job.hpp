#pragma once
// A request on its way to the worker: the IPC payload to send (kept until the request is
// answered, so it can be replayed on a fresh worker) and the callback that receives the
// worker's answer or the error that replaced it. `done` is called exactly once.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "respawn/frame.hpp"
#include "respawn/result.hpp"

namespace respawn {

using JobOutcome = Result<ipc::Frame>;

inline constexpr int kPriorityLevels = 10;  // priorities 0 (default) .. 9 (served first)

struct Job {
  std::uint64_t id = 0;  // assigned by the scheduler
  int priority = 0;      // 0 .. kPriorityLevels - 1
  // The client's own deadline, if shorter than the server's request_timeout_ms.
  std::optional<std::chrono::milliseconds> timeout;
  ipc::MessageType type = ipc::MessageType::infer;
  // The label of the HTTP route it came by (route_label() in http/router.hpp: infer, generate,
  // generate_stream, openai_completions, openai_chat), for the per-route metrics.
  std::string route;
  std::string json;
  // The tensor bytes (infer): `binary` from `binary_offset` on (a binary request's body is sent
  // as it is, past its JSON header). Shared with the frame's write while it is in flight: a job
  // can be answered, and freed, before the last of a large frame has gone out. Never null.
  std::shared_ptr<const std::string> binary = std::make_shared<const std::string>();
  std::size_t binary_offset = 0;
  std::string_view tensor_bytes() const { return std::string_view(*binary).substr(binary_offset); }
  // Its share of the worker's memory, for admission (memory_budget.hpp): tensor bytes for an
  // infer, context tokens for a generate.
  std::uint64_t weight = 0;
  std::function<void(JobOutcome)> done;
  std::chrono::steady_clock::time_point enqueued{};
  // Called each time the scheduler hands it to the worker (the statistics' queue time).
  std::function<void()> on_dispatch;
  unsigned failures = 0;  // worker failures this request was present at
  unsigned replays = 0;   // times it was re-sent to a fresh worker
  // Streaming: text that became final, as the worker produces it, and the logprobs of the
  // tokens that came with it when the request asked (null otherwise; the worker's
  // [[id, logprob, [[id, logprob], ...]], ...]). Once any reached the client the request can no
  // longer be replayed (the client would see it twice).
  std::function<void(std::string_view text, const nlohmann::json& logprobs)> on_text;
  bool streamed = false;
};

}  // namespace respawn
