#pragma once
// Triton's system shared memory extension (docs/http-api.md, "Shared memory"): clients create
// POSIX shared memory objects and register regions of them by name; an infer request's inputs
// are then read from a region and its outputs written to one, instead of travelling in the
// body. Off unless the server runs with --allow-client-shm, as in Triton: a registered key
// opens any shared memory object the server's user can open. Used on the I/O thread only.
//
// The supervisor reads and writes a region with pread/pwrite on the object's descriptor rather
// than through a mapping: a client that shrinks its object after registering it then gets an
// error for its request, where a mapping would bring the whole server down with SIGBUS.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"

namespace respawn {

// One registered region: `byte_size` bytes at `offset` in the object `key`.
class SharedMemoryRegion {
 public:
  SharedMemoryRegion(std::string name, std::string key, std::uint64_t offset,
                     std::uint64_t byte_size, int fd);
  ~SharedMemoryRegion();  // closes the object (a request in flight holds the region)
  SharedMemoryRegion(const SharedMemoryRegion&) = delete;
  SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;

  const std::string& name() const { return name_; }
  std::uint64_t byte_size() const { return byte_size_; }
  // Reads `size` bytes at `offset` in the region into `out`; writes `data` at `offset`.
  // Errors (bad_input) name `what`: out of the region, or the object no longer that long.
  std::optional<Error> read(std::uint64_t offset, std::uint64_t size, char* out,
                            const std::string& what) const;
  std::optional<Error> write(std::uint64_t offset, std::string_view data,
                             const std::string& what) const;
  nlohmann::json status() const;  // {name, key, offset, byte_size}
  // Why `size` bytes at `offset` do not fit the region, if they do not.
  std::optional<Error> check(std::uint64_t offset, std::uint64_t size,
                             const std::string& what) const;

 private:
  std::string name_;
  std::string key_;
  std::uint64_t offset_;
  std::uint64_t byte_size_;
  int fd_;
};

// Where an input or output lies in shared memory (its `parameters`).
struct SharedMemoryRef {
  std::shared_ptr<const SharedMemoryRegion> region;
  std::uint64_t offset = 0;
  std::uint64_t byte_size = 0;
};

class SharedMemoryRegistry {
 public:
  static constexpr std::size_t kMaxRegions = 1024;
  explicit SharedMemoryRegistry(bool allowed) : allowed_(allowed) {}
  static const SharedMemoryRegistry& off();  // one that refuses every region
  bool allowed() const { return allowed_; }
  // POST /v2/systemsharedmemory/region/{name}/register with {key, offset, byte_size}.
  std::optional<Error> register_region(const std::string& name, const nlohmann::json& body);
  // POST /v2/systemsharedmemory[/region/{name}]/unregister: that region (empty name: all). A
  // name that is not registered is no error, as in Triton.
  std::optional<Error> unregister(const std::string& name);
  // GET /v2/systemsharedmemory[/region/{name}]/status: every region, or the one named.
  Result<nlohmann::json> status(const std::string& name) const;
  // The region that an input's or output's `parameters` name, checked to hold
  // shared_memory_byte_size bytes at shared_memory_offset; nullopt when they name none. `what`
  // ("input 'x'") starts the errors.
  Result<std::optional<SharedMemoryRef>> ref(const nlohmann::json& parameters,
                                             const std::string& what) const;

 private:
  std::optional<Error> refusal() const;
  bool allowed_;
  std::map<std::string, std::shared_ptr<const SharedMemoryRegion>> regions_;
};

}  // namespace respawn
