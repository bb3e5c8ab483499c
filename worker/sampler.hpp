#pragma once
// Next-token choice from a logits vector: greedy at temperature 0, otherwise softmax with
// temperature and nucleus (top-p) filtering. Torch-free so decoding is unit-testable.
// Thread-compatible: each sequence owns its rng, so a result depends only on its own seed.
#include <cstdint>
#include <random>
#include <vector>

namespace respawn::worker {

// Only logits[0, vocab) take part: a model may have more rows than its tokenizer has tokens.
int sample_token(const std::vector<float>& logits, double temperature, double top_p,
                 std::mt19937_64& rng, std::size_t vocab = SIZE_MAX);

}  // namespace respawn::worker
