#pragma once
// Process memory as Linux reports it in /proc. Thread-safe; returns 0 when unreadable.
#include <sys/types.h>
#include <cstdint>

namespace respawn {

std::uint64_t rss_bytes(pid_t pid);  // resident set size of pid (0 = self)

// This process's RSS high-water mark (VmHWM), and its reset to the current RSS (writing 5 to
// /proc/self/clear_refs, Linux >= 4.0): together, the peak host memory of a stretch of work.
std::uint64_t peak_rss_bytes();
// Processes the kernel's OOM killer has killed since boot (/proc/vmstat oom_kill, Linux >=
// 4.13; it counts cgroup OOM kills too). A SIGKILLed worker was OOM-killed if it grew meanwhile.
std::uint64_t system_oom_kills();
void reset_peak_rss();

// This process's figures as the Prometheus client libraries export them (process_*): from
// /proc/self/stat, /proc/self/fd, /proc/stat (boot time) and RLIMIT_NOFILE. Zeros where
// unreadable.
struct ProcessStats {
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;      // the soft limit
  double start_time_seconds = 0;  // since the Unix epoch
  double cpu_seconds = 0;         // user + system
};
ProcessStats read_process_stats();

}  // namespace respawn
