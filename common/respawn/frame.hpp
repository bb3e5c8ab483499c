#pragma once
// The IPC frame codec shared by the supervisor and the worker (see docs/ipc.md).
//
// A frame is a fixed 24-byte little-endian header followed by a JSON part and a raw binary part:
//   magic u32 "RSPN" | version u16 | type u16 | request_id u64 | json_len u32 | bin_len u32
// Everything here is a pure function or a value type; FrameDecoder is not thread-safe.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "respawn/result.hpp"

namespace respawn::ipc {

inline constexpr std::uint32_t kMagic = 0x4e505352;  // "RSPN" read as little-endian u32
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 24;
inline constexpr std::size_t kDefaultMaxFrameBytes = 256u << 20;

enum class MessageType : std::uint16_t {
  ready = 1,       // worker -> supervisor: loaded and warmed up; JSON has model metadata
  infer = 2,       // supervisor -> worker: run forward on raw tensors
  generate = 3,    // supervisor -> worker: decode text
  token = 4,       // worker -> supervisor: a chunk of generated text (streaming, liveness)
  result = 5,      // worker -> supervisor: the answer to request_id
  error = 6,       // worker -> supervisor: request_id failed; JSON {kind, message, healthy}
  heartbeat = 7,   // worker -> supervisor: alive (reserved: no worker sends it yet; while busy
                   // the supervisor treats it like a token and restarts the hang timer)
  cancel = 8,      // supervisor -> worker: stop request_id
  shutdown = 9,    // supervisor -> worker: finish and exit
  configure = 10,  // supervisor -> worker: batching and memory settings (JSON), at any time
};

bool is_known_type(std::uint16_t type);
std::string_view to_string(MessageType type);

struct Frame {
  MessageType type = MessageType::result;
  std::uint64_t request_id = 0;
  std::string json;    // UTF-8 JSON text, may be empty
  std::string binary;  // raw bytes (tensor data), may be empty
};

struct FrameHeader {
  std::uint32_t magic = kMagic;
  std::uint16_t version = kVersion;
  std::uint16_t type = 0;
  std::uint64_t request_id = 0;
  std::uint32_t json_len = 0;
  std::uint32_t bin_len = 0;
};

// A frame's header and JSON, for a frame whose `binary_size` bytes of binary are sent right
// after them from where they already are.
std::string encode_frame_head(MessageType type, std::uint64_t request_id, std::string_view json,
                              std::size_t binary_size);
// Serializes a frame; the caller is responsible for the size limit on the receiving side.
std::string encode_frame(const Frame& frame);
std::string encode_frame(MessageType type, std::uint64_t request_id, std::string_view json,
                         std::string_view binary);
void encode_header(const FrameHeader& header, char* out);  // writes kHeaderSize bytes
FrameHeader decode_header(const char* in);                 // reads kHeaderSize bytes, no checks

// Writes all of `bytes` to a blocking descriptor (retrying short writes and EINTR); false when
// the peer is gone. For the worker side, which uses plain blocking I/O.
bool write_all(int fd, std::string_view bytes);

// Checks magic, version, type and the total size against max_frame_bytes.
std::optional<Error> validate_header(const FrameHeader& header, std::size_t max_frame_bytes);

// Incremental decoder for a byte stream: feed() what the socket gave, then next() until it
// returns nothing. After an error the stream is unusable (the peer is broken), and the error
// stays put.
class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t max_frame_bytes = kDefaultMaxFrameBytes)
      : max_frame_bytes_(max_frame_bytes) {}

  void feed(std::string_view bytes);
  // A complete frame, or nullopt when more bytes are needed or the stream is broken.
  std::optional<Frame> next();
  const std::optional<Error>& error() const { return error_; }
  std::size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::size_t max_frame_bytes_;
  std::string buffer_;
  std::size_t consumed_ = 0;
  std::optional<Error> error_;
};

}  // namespace respawn::ipc
