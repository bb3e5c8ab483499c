#include "respawn/logging.hpp"

#include <unistd.h>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <cstdlib>

namespace respawn {

void init_logging(const std::string& role) {
  auto logger = spdlog::stderr_logger_mt(role);
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e [" + role + " " + std::to_string(::getpid()) +
                      "] %l: %v");
  spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=debug and friends
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace respawn
