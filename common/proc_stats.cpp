#include "respawn/proc_stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace respawn {

std::uint64_t rss_bytes(pid_t pid) {
  const std::string path =
      pid == 0 ? "/proc/self/statm" : "/proc/" + std::to_string(pid) + "/statm";
  std::ifstream in(path);
  std::uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

std::uint64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // in kB
  }
  return 0;
}

std::uint64_t system_oom_kills() {
  std::ifstream in("/proc/vmstat");
  std::string name;
  std::uint64_t value = 0;
  while (in >> name >> value) {
    if (name == "oom_kill") return value;
  }
  return 0;
}

void reset_peak_rss() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

namespace {

// The system's boot time (btime in /proc/stat), seconds since the epoch; 0 when unreadable.
std::uint64_t boot_time_s() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

std::uint64_t open_fd_count() {
  std::error_code ec;
  std::uint64_t n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++n;
  }
  return n;
}

}  // namespace

ProcessStats read_process_stats() {
  ProcessStats stats;
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) is in parentheses and may hold spaces: fields count from the
  // last ')'. After it come field 3 (state) onwards.
  const auto close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(text.substr(close + 1));
    std::vector<std::string> f;  // f[0] is field 3
    for (std::string field; fields >> field;) f.push_back(field);
    const auto at = [&](std::size_t field) -> std::uint64_t {
      return field - 3 < f.size() ? std::strtoull(f[field - 3].c_str(), nullptr, 10) : 0;
    };
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    stats.cpu_seconds = static_cast<double>(at(14) + at(15)) / ticks;  // utime + stime
    stats.start_time_seconds =
        static_cast<double>(boot_time_s()) + static_cast<double>(at(22)) / ticks;
    stats.virtual_bytes = at(23);
    stats.resident_bytes = at(24) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  }
  stats.open_fds = open_fd_count();
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) stats.max_fds = limit.rlim_cur;
  return stats;
}

}  // namespace respawn
