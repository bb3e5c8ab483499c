#include "http/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "respawn/json_util.hpp"

namespace respawn {

namespace {

// Triton's words for a name that is not registered (its clients and tests look for them).
std::string unknown_region(const std::string& name) {
  return "Unable to find system shared memory region: '" + name + "'";
}

Error bad(const std::string& message) {
  return make_error(ErrorKind::bad_input, message);
}

}  // namespace

SharedMemoryRegion::SharedMemoryRegion(std::string name, std::string key, std::uint64_t offset,
                                       std::uint64_t byte_size, int fd)
    : name_(std::move(name)),
      key_(std::move(key)),
      offset_(offset),
      byte_size_(byte_size),
      fd_(fd) {}

SharedMemoryRegion::~SharedMemoryRegion() {
  ::close(fd_);
}

std::optional<Error> SharedMemoryRegion::check(std::uint64_t offset, std::uint64_t size,
                                               const std::string& what) const {
  if (offset > byte_size_ || size > byte_size_ - offset) {
    return bad(what + ": " + std::to_string(size) + " bytes at offset " + std::to_string(offset) +
               " do not fit shared memory region '" + name_ + "' (" + std::to_string(byte_size_) +
               " bytes)");
  }
  return std::nullopt;
}

std::optional<Error> SharedMemoryRegion::read(std::uint64_t offset, std::uint64_t size, char* out,
                                              const std::string& what) const {
  if (auto error = check(offset, size, what)) return error;
  for (std::uint64_t done = 0; done < size;) {
    const ssize_t n =
        ::pread(fd_, out + done, size - done, static_cast<off_t>(offset_ + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return bad(what + ": shared memory region '" + name_ + "' cannot be read (" +
                 (n < 0 ? std::strerror(errno) : "its object is shorter than registered") + ")");
    }
    done += static_cast<std::uint64_t>(n);
  }
  return std::nullopt;
}

std::optional<Error> SharedMemoryRegion::write(std::uint64_t offset, std::string_view data,
                                               const std::string& what) const {
  if (auto error = check(offset, data.size(), what)) return error;
  // pwrite would grow an object that was shrunk: it must still hold the region (one shrunk
  // between this check and the write grows back, which is harmless: no SIGBUS either way).
  struct stat st {};
  if (::fstat(fd_, &st) != 0 ||
      static_cast<std::uint64_t>(st.st_size) < offset_ + offset + data.size()) {
    return bad(what + ": shared memory region '" + name_ +
               "' cannot be written (its object is shorter than registered)");
  }
  for (std::size_t done = 0; done < data.size();) {
    const ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done,
                               static_cast<off_t>(offset_ + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return bad(what + ": shared memory region '" + name_ + "' cannot be written (" +
                 std::strerror(errno) + ")");
    }
    done += static_cast<std::size_t>(n);
  }
  return std::nullopt;
}

nlohmann::json SharedMemoryRegion::status() const {
  return {{"name", name_}, {"key", key_}, {"offset", offset_}, {"byte_size", byte_size_}};
}

const SharedMemoryRegistry& SharedMemoryRegistry::off() {
  static const SharedMemoryRegistry registry(false);
  return registry;
}

std::optional<Error> SharedMemoryRegistry::refusal() const {
  if (allowed_) return std::nullopt;
  return bad("client shared memory is off: start respawn with --allow-client-shm to use it");
}

std::optional<Error> SharedMemoryRegistry::register_region(const std::string& name,
                                                           const nlohmann::json& body) {
  if (auto refused = refusal()) return refused;
  const auto& key = json_field(body, "key");
  const auto& offset = json_field(body, "offset");
  const auto& size = json_field(body, "byte_size");
  if (!key.is_string() || key.get_ref<const std::string&>().empty()) {
    return bad("'key' must be the name of a shared memory object");
  }
  if (!offset.is_null() && !offset.is_number_unsigned()) {
    return bad("'offset' must be a non-negative integer");
  }
  if (!size.is_number_unsigned() || size.get<std::uint64_t>() == 0) {
    return bad("'byte_size' must be a positive integer");
  }
  if (regions_.count(name) != 0) {
    return bad("shared memory region '" + name + "' is already registered");
  }
  if (regions_.size() >= kMaxRegions) {
    return bad("already " + std::to_string(kMaxRegions) +
               " shared memory regions are registered (each holds a file descriptor): "
               "unregister some first");
  }
  const std::string k = key;
  const std::uint64_t at = offset.is_null() ? 0 : offset.get<std::uint64_t>();
  const std::uint64_t bytes = size;
  // O_NONBLOCK: a FIFO someone left in /dev/shm must not block the server (it is refused below).
  const int fd = ::shm_open(k.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0) {
    return bad("cannot open shared memory object '" + k + "': " + std::strerror(errno));
  }
  auto region = std::make_shared<const SharedMemoryRegion>(name, k, at, bytes, fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return bad("shared memory object '" + k + "' cannot be used");
  }
  if (at > static_cast<std::uint64_t>(st.st_size) ||
      bytes > static_cast<std::uint64_t>(st.st_size) - at) {
    return bad("shared memory object '" + k + "' has " + std::to_string(st.st_size) +
               " bytes: no room for " + std::to_string(bytes) + " at offset " + std::to_string(at));
  }
  regions_.emplace(name, std::move(region));
  return std::nullopt;
}

std::optional<Error> SharedMemoryRegistry::unregister(const std::string& name) {
  if (auto refused = refusal()) return refused;
  if (name.empty()) {
    regions_.clear();
  } else {
    regions_.erase(name);
  }
  return std::nullopt;
}

Result<nlohmann::json> SharedMemoryRegistry::status(const std::string& name) const {
  if (auto refused = refusal()) return *refused;
  auto list = nlohmann::json::array();
  if (name.empty()) {
    for (const auto& [n, region] : regions_) list.push_back(region->status());
    return list;
  }
  const auto it = regions_.find(name);
  if (it == regions_.end()) {
    return make_error(ErrorKind::not_found, unknown_region(name));
  }
  list.push_back(it->second->status());
  return list;
}

Result<std::optional<SharedMemoryRef>> SharedMemoryRegistry::ref(const nlohmann::json& parameters,
                                                                 const std::string& what) const {
  const auto& name = json_field(parameters, "shared_memory_region");
  const auto& size = json_field(parameters, "shared_memory_byte_size");
  const auto& offset = json_field(parameters, "shared_memory_offset");
  if (name.is_null()) {
    if (!size.is_null() || !offset.is_null()) {
      return bad(what +
                 ": shared_memory_byte_size and shared_memory_offset need "
                 "shared_memory_region");
    }
    return std::optional<SharedMemoryRef>{};
  }
  if (auto refused = refusal()) return bad(what + ": " + refused->message);
  if (!name.is_string()) return bad(what + ": shared_memory_region must be a string");
  if (!size.is_number_unsigned()) {
    return bad(what + ": shared_memory_byte_size must be a non-negative integer");
  }
  if (!offset.is_null() && !offset.is_number_unsigned()) {
    return bad(what + ": shared_memory_offset must be a non-negative integer");
  }
  const auto it = regions_.find(name.get<std::string>());
  if (it == regions_.end()) {
    return bad(what + ": " + unknown_region(name.get<std::string>()));
  }
  SharedMemoryRef ref{it->second, offset.is_null() ? 0 : offset.get<std::uint64_t>(),
                      size.get<std::uint64_t>()};
  if (auto error = ref.region->check(ref.offset, ref.byte_size, what)) return *error;
  return std::optional<SharedMemoryRef>{std::move(ref)};
}

}  // namespace respawn
