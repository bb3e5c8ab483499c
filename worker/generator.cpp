#include "generator.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
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

Sequence::Sequence(const GenerateRequest& request, std::size_t max_context,
                   const Tokenizer* tokenizer)
    : request_(request), max_context_(max_context), tokenizer_(tokenizer) {
  if (!request.prompt_ids.empty()) {
    ids_ = request.prompt_ids;
  } else if (tokenizer) {
    for (const auto id : tokenizer->encode(request.prompt, true)) ids_.push_back(id);
  } else {
    ids_.assign(request.prompt.begin(), request.prompt.end());
    for (auto& id : ids_) id &= 0xff;  // chars may be signed
  }
  out_.prompt_tokens = static_cast<int>(ids_.size());
  // An empty prompt still needs one token to condition on: a newline is a neutral start.
  if (ids_.empty()) {
    ids_.push_back('\n');
    if (tokenizer) {
      const auto newline = tokenizer->encode("\n", false);
      ids_.back() = newline.empty() ? 0 : newline.front();  // a tokenizer may drop a newline
    }
  }
  if (tokenizer) {
    std::vector<std::uint32_t> prompt(ids_.begin(), ids_.end());
    detokenizer_.emplace(*tokenizer, prompt);
  }
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
  // Never an id the tokenizer cannot decode: a model may have more logits than it has tokens.
  const std::size_t vocab =
      tokenizer_ ? std::min(logits.size(), tokenizer_->vocab_size()) : logits.size();
  const int token = sample_token(logits, request_.temperature, request_.top_p, rng_, vocab);
  if (request_.logprobs >= 0) record_logprobs(logits, vocab, token);
  ids_.push_back(token);
  ++out_.completion_tokens;
  if (std::find(request_.stop_token_ids.begin(), request_.stop_token_ids.end(), token) !=
      request_.stop_token_ids.end()) {
    finish("stop");
    return "";
  }
  if (detokenizer_) {
    generated_ += detokenizer_->push(static_cast<std::uint32_t>(token));
  } else {
    generated_.push_back(static_cast<char>(token));
  }
  if (auto at = stop_position(generated_, request_.stop)) {
    generated_.resize(*at);
    detokenizer_.reset();  // what it holds back comes after the stop string
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

void Sequence::record_logprobs(const std::vector<float>& logits, std::size_t vocab, int token) {
  const float top = *std::max_element(logits.begin(), logits.begin() + vocab);
  double sum = 0;
  for (std::size_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - top);
  const double log_total = top + std::log(sum);
  const auto logprob = [&](std::size_t i) {
    return static_cast<float>(static_cast<double>(logits[i]) - log_total);
  };
  TokenLogprob entry{token, logprob(static_cast<std::size_t>(token)), {}};
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(request_.logprobs), vocab);
  std::vector<std::int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    [&](std::int64_t a, std::int64_t b) {
                      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                    });
  for (std::size_t k = 0; k < n; ++k) {
    entry.top.emplace_back(order[k], logprob(static_cast<std::size_t>(order[k])));
  }
  out_.logprobs.push_back(std::move(entry));
}

std::string Sequence::flush() {
  if (detokenizer_) generated_ += detokenizer_->flush();
  detokenizer_.reset();
  std::string rest = take(generated_.size());
  out_.text = sanitize_utf8(generated_);
  return rest;
}

Result<GenerateOutput, WorkerError> generate_text(const GenerateRequest& request,
                                                  const LogitsFn& logits, std::size_t max_context,
                                                  const TextFn& on_text, const StopFn& cancelled,
                                                  const Tokenizer* tokenizer) {
  Sequence seq(request, max_context, tokenizer);
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
