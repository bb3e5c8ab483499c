#include "generator.hpp"

#include <algorithm>
#include <random>

#include "respawn/utf8.hpp"
#include "sampler.hpp"

namespace respawn::worker {
namespace {

// Where a stop string starts in `text`, if one ends at its last byte (text is checked after
// every byte, so no match can end earlier). When several match ("b" and "ab"), the text is
// cut before the earliest, whatever their order in the request.
std::optional<std::size_t> stop_position(const std::string& text,
                                         const std::vector<std::string>& stops) {
  std::optional<std::size_t> earliest;
  for (const auto& s : stops) {
    if (text.size() >= s.size() && text.compare(text.size() - s.size(), s.size(), s) == 0) {
      const std::size_t at = text.size() - s.size();
      if (!earliest || at < *earliest) earliest = at;
    }
  }
  return earliest;
}

}  // namespace

Result<GenerateOutput, WorkerError> generate_text(const GenerateRequest& request,
                                                  const LogitsFn& logits, std::size_t max_context,
                                                  const TokenFn& on_token) {
  // An empty prompt still needs one token to condition on; a newline is a neutral start.
  const std::string prompt = request.prompt.empty() ? "\n" : request.prompt;
  std::vector<std::int64_t> ids(prompt.begin(), prompt.end());
  for (auto& id : ids) id &= 0xff;  // chars may be signed

  GenerateOutput out;
  out.prompt_tokens = static_cast<int>(request.prompt.size());
  out.seed = request.seed ? *request.seed : std::random_device{}();
  std::mt19937_64 rng(out.seed);
  std::string generated;
  out.finish_reason = "length";
  std::vector<std::int64_t> window;
  for (int step = 0; step < request.max_tokens; ++step) {
    const std::size_t from = ids.size() > max_context ? ids.size() - max_context : 0;
    window.assign(ids.begin() + static_cast<std::ptrdiff_t>(from), ids.end());
    auto next = logits(window);
    if (!next) return next.error();
    const int token = sample_token(*next, request.temperature, request.top_p, rng);
    ids.push_back(token);
    generated.push_back(static_cast<char>(token));
    if (on_token) on_token(token);
    ++out.completion_tokens;
    if (auto at = stop_position(generated, request.stop)) {
      generated.resize(*at);
      out.finish_reason = "stop";
      break;
    }
  }
  out.text = sanitize_utf8(generated);
  return out;
}

}  // namespace respawn::worker
