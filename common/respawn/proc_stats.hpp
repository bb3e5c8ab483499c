#pragma once
// Process memory as Linux reports it in /proc. Thread-safe; returns 0 when unreadable.
#include <sys/types.h>
#include <cstdint>

namespace respawn {

std::uint64_t rss_bytes(pid_t pid);  // resident set size of pid (0 = self)

}  // namespace respawn
