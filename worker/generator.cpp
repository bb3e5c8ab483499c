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

std::size_t stop_prefix_overlap(std::string_view text, const std::vector<std::string>& stops) {
  std::size_t longest = 0;
  for (const auto& s : stops) {
    for (std::size_t k = std::min(s.size() - 1, text.size()); k > longest; --k) {
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        longest = k;
        break;
      }
    }
  }
  return longest;
}

Result<GenerateOutput, WorkerError> generate_text(const GenerateRequest& request,
                                                  const LogitsFn& logits, std::size_t max_context,
                                                  const TextFn& on_text, const StopFn& cancelled) {
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
  std::size_t sent = 0;  // bytes of `generated` already handed to on_text
  const auto emit = [&](std::size_t upto) {
    if (!on_text) return;
    const std::string chunk = upto > sent ? sanitize_utf8(generated.substr(sent, upto - sent)) : "";
    sent = std::max(sent, upto);
    on_text(chunk);
  };
  for (int step = 0; step < request.max_tokens; ++step) {
    if (cancelled && cancelled()) {
      out.finish_reason = "cancelled";
      break;
    }
    const std::size_t from = ids.size() > max_context ? ids.size() - max_context : 0;
    window.assign(ids.begin() + static_cast<std::ptrdiff_t>(from), ids.end());
    auto next = logits(window);
    if (!next) return next.error();
    const int token = sample_token(*next, request.temperature, request.top_p, rng);
    ids.push_back(token);
    generated.push_back(static_cast<char>(token));
    ++out.completion_tokens;
    if (auto at = stop_position(generated, request.stop)) {
      generated.resize(*at);
      out.finish_reason = "stop";
      break;
    }
    const std::size_t settled = generated.size() - stop_prefix_overlap(generated, request.stop);
    emit(complete_utf8_prefix(std::string_view(generated).substr(0, settled)));
  }
  emit(generated.size());
  out.text = sanitize_utf8(generated);
  return out;
}

}  // namespace respawn::worker
