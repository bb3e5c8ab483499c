#include "sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace respawn::worker {

int sample_token(const std::vector<float>& logits, double temperature, double top_p,
                 std::mt19937_64& rng, std::size_t vocab) {
  const auto end = logits.begin() + static_cast<std::ptrdiff_t>(std::min(vocab, logits.size()));
  const auto argmax = [&] {
    return static_cast<int>(std::max_element(logits.begin(), end) - logits.begin());
  };
  if (temperature <= 0.0 || end - logits.begin() < 2) return argmax();

  const float max_logit = *std::max_element(logits.begin(), end);
  std::vector<double> probs(static_cast<std::size_t>(end - logits.begin()));
  for (std::size_t i = 0; i < probs.size(); ++i) {
    probs[i] = std::exp((static_cast<double>(logits[i]) - max_logit) / temperature);
  }
  std::vector<int> order(probs.size());
  std::iota(order.begin(), order.end(), 0);
  // Stable, so equal probabilities keep token order and a seed always picks the same token.
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return probs[a] > probs[b]; });

  const double total = std::accumulate(probs.begin(), probs.end(), 0.0);
  if (!(total > 0.0) || !std::isfinite(total)) return argmax();
  // Keep the smallest prefix whose mass reaches top_p (always at least one token).
  double kept = 0.0;
  std::size_t n = 0;
  while (n < order.size() && (n == 0 || kept < top_p * total)) kept += probs[order[n++]];

  // Draw in [0, kept) by hand: std::uniform_real_distribution's output differs across
  // standard libraries, and the draw must be reproducible from the seed.
  const double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0) * kept;
  double acc = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    acc += probs[order[i]];
    if (u < acc) return order[i];
  }
  return order[n - 1];
}

}  // namespace respawn::worker
