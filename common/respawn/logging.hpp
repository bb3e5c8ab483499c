#pragma once
// Logging setup shared by both binaries: everything goes to stderr (stdout is reserved for
// the one machine-readable "listening on" line), with the process's role and pid in each line.
#include <string>

namespace respawn {

void init_logging(const std::string& role);

}  // namespace respawn
