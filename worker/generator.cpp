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

Sequence::Sequence(const GenerateRequest& request, std::size_t max_context)
    : request_(request), max_context_(max_context) {
  // An empty prompt still needs one token to condition on; a newline is a neutral start.
  const std::string prompt = request.prompt.empty() ? "\n" : request.prompt;
  ids_.assign(prompt.begin(), prompt.end());
  for (auto& id : ids_) id &= 0xff;  // chars may be signed
  out_.prompt_tokens = static_cast<int>(request.prompt.size());
  out_.seed = request.seed ? *request.seed : std::random_device{}();
  rng_.seed(out_.seed);
  out_.finish_reason = "length";
  if (request.max_tokens <= 0) finish("length");
}

const std::vector<std::int64_t>& Sequence::context() {
  const std::size_t from = ids_.size() > max_context_ ? ids_.size() - max_context_ : 0;
  window_.assign(ids_.begin() + static_cast<std::ptrdiff_t>(from), ids_.end());
  return window_;
}

std::string Sequence::take(std::size_t upto) {
  const std::string chunk =
      upto > sent_ ? sanitize_utf8(generated_.substr(sent_, upto - sent_)) : "";
  sent_ = std::max(sent_, upto);
  return chunk;
}

void Sequence::finish(std::string reason) {
  out_.finish_reason = std::move(reason);
  done_ = true;
}

std::string Sequence::advance(const std::vector<float>& logits) {
  const int token = sample_token(logits, request_.temperature, request_.top_p, rng_);
  ids_.push_back(token);
  generated_.push_back(static_cast<char>(token));
  ++out_.completion_tokens;
  if (auto at = stop_position(generated_, request_.stop)) {
    generated_.resize(*at);
    finish("stop");
    return "";
  }
  if (out_.completion_tokens >= request_.max_tokens) {
    finish("length");
    return "";  // flush() hands over the rest
  }
  const std::size_t settled = generated_.size() - stop_prefix_overlap(generated_, request_.stop);
  return take(complete_utf8_prefix(std::string_view(generated_).substr(0, settled)));
}

void Sequence::cancel() {
  if (!done_) finish("cancelled");
}

std::string Sequence::flush() {
  std::string rest = take(generated_.size());
  out_.text = sanitize_utf8(generated_);
  return rest;
}

Result<GenerateOutput, WorkerError> generate_text(const GenerateRequest& request,
                                                  const LogitsFn& logits, std::size_t max_context,
                                                  const TextFn& on_text, const StopFn& cancelled) {
  Sequence seq(request, max_context);
  while (!seq.done()) {
    if (cancelled && cancelled()) {
      seq.cancel();
      break;
    }
    auto next = logits(seq.context());
    if (!next) return next.error();
    std::string chunk = seq.advance(*next);
    if (on_text && !seq.done()) on_text(chunk);
  }
  std::string rest = seq.flush();
  if (on_text) on_text(rest);
  return seq.output();
}

}  // namespace respawn::worker
