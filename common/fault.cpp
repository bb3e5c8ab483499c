#include "respawn/fault.hpp"

#include <charconv>
#include <utility>

namespace respawn {

std::optional<Fault> parse_fault(std::string_view spec) {
  using K = Fault::Kind;
  static constexpr std::pair<std::string_view, K> kPlain[] = {
      {"crash", K::crash},
      {"hang", K::hang},
      {"oom", K::oom},
      {"oom_fatal", K::oom_fatal},
      {"oom_if_batched", K::oom_if_batched},
      {"cuda_error", K::cuda_error},
      {"illegal_memory_access", K::illegal_memory_access},
      {"malformed", K::malformed},
      {"fail_load", K::fail_load},
      {"crash_on_load", K::crash_on_load},
  };
  for (const auto& [name, kind] : kPlain) {
    if (spec == name) return Fault{kind, 0};
  }
  for (const auto& [prefix, kind] : {std::pair{std::string_view("slow:"), K::slow},
                                     std::pair{std::string_view("slow_load:"), K::slow_load}}) {
    if (spec.substr(0, prefix.size()) != prefix) continue;
    const auto digits = spec.substr(prefix.size());
    unsigned ms = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ms);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) break;
    return Fault{kind, ms};
  }
  return std::nullopt;
}

bool is_start_fault(const Fault& fault) {
  return fault.kind == Fault::Kind::fail_load || fault.kind == Fault::Kind::crash_on_load ||
         fault.kind == Fault::Kind::slow_load;
}

}  // namespace respawn
