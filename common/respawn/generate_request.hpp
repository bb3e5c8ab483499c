#pragma once
// Sampling parameters of one text generation, as the supervisor validates them from HTTP and
// the worker reads them from IPC. One definition so that both agree on names, defaults and
// limits. Pure functions, thread-safe.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"

namespace respawn {

struct GenerateLimits {
  int max_tokens = 4096;
  std::size_t max_prompt_bytes = 1 << 20;
  std::size_t max_stop_strings = 8;
};

// Stop strings the server may add to a client's after validating them (the chat template's
// next-turn marker): the IPC form allows the client's maximum plus these.
inline constexpr std::size_t kServerStopStrings = 1;

struct GenerateRequest {
  std::string prompt;
  // The prompt as the model's token ids, when the server has a tokenizer: the supervisor
  // encodes, the worker conditions on these and `prompt` is only for logs. Empty: byte-level,
  // the prompt's bytes are its tokens.
  std::vector<std::int64_t> prompt_ids;
  // Ids that end the generation with finish_reason "stop" (the model's EOS ids); not in the text.
  std::vector<std::int64_t> stop_token_ids;
  // The log-probabilities of the chosen tokens and of this many most likely ones at each step
  // (0 to kMaxTopLogprobs); -1: none.
  int logprobs = -1;
  int max_tokens = 16;
  double temperature = 0.0;  // 0 = greedy
  double top_p = 1.0;
  std::optional<std::uint64_t> seed;  // none = a fresh random seed per request
  std::vector<std::string> stop;
};

inline constexpr int kMaxTopLogprobs = 20;

// The keys parse_generate_request reads from `params`.
inline constexpr const char* kGenerateParameterKeys[] = {"max_tokens", "temperature", "top_p",
                                                         "seed", "stop"};

// Reads the parameters from `params` (kGenerateParameterKeys) and the prompt from `prompt`. Unknown
// keys are ignored. Errors are bad_input and name the field.
Result<GenerateRequest> parse_generate_request(std::string prompt, const nlohmann::json& params,
                                               const GenerateLimits& limits = {});

nlohmann::json to_json(const GenerateRequest& request);

// Tokens of prompt: its ids, or its bytes when byte-level.
std::size_t prompt_tokens(const GenerateRequest& request);

// A generation's share of the worker's memory, in tokens of context: the longest window it
// will run with. The supervisor's memory budget and the worker's memory reports both use it.
std::uint64_t memory_weight(const GenerateRequest& request, std::size_t max_context);
// The IPC form: {"prompt": ..., params..., and prompt_ids, stop_token_ids, logprobs when set}.
Result<GenerateRequest> generate_request_from_json(const nlohmann::json& j);

}  // namespace respawn
