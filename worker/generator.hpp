#pragma once
// The decoding loop: each step asks the model for the next-token logits and samples. Tokens
// are the model's tokenizer's ids, or bytes for a byte-level model (no tokenizer). Stops at
// max_tokens, a stop id (EOS) or a stop string, and returns valid UTF-8. Torch-free: the model is
// reached through LogitsFn, so the loop is unit-testable.
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "respawn/detokenizer.hpp"
#include "respawn/generate_request.hpp"
#include "respawn/result.hpp"
#include "respawn/worker_error.hpp"

namespace respawn::worker {

// Logits of the next token after `ids` (the generator already cut ids to the model's context).
using LogitsFn =
    std::function<Result<std::vector<float>, WorkerError>(const std::vector<std::int64_t>& ids)>;

// The log-probability of a chosen token and of the most likely ones at its step.
struct TokenLogprob {
  std::int64_t id = 0;
  float logprob = 0;
  std::vector<std::pair<std::int64_t, float>> top;  // most likely first
};

struct GenerateOutput {
  std::string text;           // valid UTF-8, stop string and stop ids excluded
  std::string finish_reason;  // "length", "stop" or "cancelled"
  int prompt_tokens = 0;
  int completion_tokens = 0;
  std::uint64_t seed = 0;              // the seed used, so a random run can be reproduced
  std::vector<TokenLogprob> logprobs;  // one per generated token, when the request asked
};

// Called after every generated token with the text that became final (often empty: bytes that
// may still turn into a stop string or complete a UTF-8 sequence are held back), and once more
// at the end with the rest. The chunks concatenated are exactly GenerateOutput::text. Every call
// is progress (and, to the supervisor, proof of life).
using TextFn = std::function<void(std::string_view chunk)>;

// Asked before every decode step: true stops the generation (finish_reason "cancelled").
using StopFn = std::function<bool()>;

// One generation as a state machine, so that many of them can share a batched forward pass
// (continuous batching): ask context() for the tokens to condition on, compute the next-token
// logits however (alone or in a batch), and hand them to advance(). A sequence's result depends
// only on its own request (prompt, sampling parameters, seed), never on its batch-mates.
class Sequence {
 public:
  // With a tokenizer, the prompt is request.prompt_ids (or request.prompt encoded) and only
  // ids it can decode are sampled, however many logits the model has; without, bytes.
  Sequence(const GenerateRequest& request, std::size_t max_context,
           const Tokenizer* tokenizer = nullptr);

  bool done() const { return done_; }
  // The last max_context tokens: what the next step conditions on. Only while !done().
  const std::vector<std::int64_t>& context();
  std::size_t length() const { return ids_.size(); }  // prompt and generated tokens
  std::int64_t last_token() const { return ids_.back(); }
  // Samples the next token from its logits; returns the text that became final (often empty,
  // and always empty on the step that ends the sequence: flush() hands over the rest).
  std::string advance(const std::vector<float>& logits);
  // Stops before the next step (finish_reason "cancelled").
  void cancel();
  // Once done(): the text not yet returned by advance(), then the whole output.
  std::string flush();
  const GenerateOutput& output() const { return out_; }

 private:
  GenerateRequest request_;
  std::size_t max_context_;
  std::vector<std::int64_t> ids_;
  std::vector<std::int64_t> window_;
  const Tokenizer* tokenizer_;
  std::optional<IncrementalDetokenizer> detokenizer_;
  std::string generated_;
  std::size_t sent_ = 0;  // bytes of generated_ already returned as final
  std::mt19937_64 rng_;
  GenerateOutput out_;
  bool done_ = false;
  std::string take(std::size_t upto);
  void finish(std::string reason);
  void record_logprobs(const std::vector<float>& logits, std::size_t vocab, int token);
};

// Runs one sequence to the end on its own, one forward per step.
Result<GenerateOutput, WorkerError> generate_text(const GenerateRequest& request,
                                                  const LogitsFn& logits, std::size_t max_context,
                                                  const TextFn& on_text = nullptr,
                                                  const StopFn& cancelled = nullptr,
                                                  const Tokenizer* tokenizer = nullptr);

// How many trailing bytes of `text` could still be the start of a stop string.
std::size_t stop_prefix_overlap(std::string_view text, const std::vector<std::string>& stops);

}  // namespace respawn::worker
