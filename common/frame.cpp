#include "respawn/frame.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace respawn::ipc {
namespace {

template <typename T>
void put_le(char*& out, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    *out++ = static_cast<char>((static_cast<std::uint64_t>(value) >> (8 * i)) & 0xff);
  }
}

template <typename T>
T get_le(const char*& in) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    value |= static_cast<std::uint64_t>(static_cast<unsigned char>(*in++)) << (8 * i);
  }
  return static_cast<T>(value);
}

}  // namespace

bool is_known_type(std::uint16_t type) {
  return type >= static_cast<std::uint16_t>(MessageType::ready) &&
         type <= static_cast<std::uint16_t>(MessageType::configure);
}

std::string_view to_string(MessageType type) {
  switch (type) {
    case MessageType::ready:
      return "ready";
    case MessageType::infer:
      return "infer";
    case MessageType::generate:
      return "generate";
    case MessageType::token:
      return "token";
    case MessageType::result:
      return "result";
    case MessageType::error:
      return "error";
    case MessageType::heartbeat:
      return "heartbeat";
    case MessageType::cancel:
      return "cancel";
    case MessageType::shutdown:
      return "shutdown";
    case MessageType::configure:
      return "configure";
  }
  return "unknown";
}

void encode_header(const FrameHeader& header, char* out) {
  put_le(out, header.magic);
  put_le(out, header.version);
  put_le(out, header.type);
  put_le(out, header.request_id);
  put_le(out, header.json_len);
  put_le(out, header.bin_len);
}

FrameHeader decode_header(const char* in) {
  FrameHeader h;
  h.magic = get_le<std::uint32_t>(in);
  h.version = get_le<std::uint16_t>(in);
  h.type = get_le<std::uint16_t>(in);
  h.request_id = get_le<std::uint64_t>(in);
  h.json_len = get_le<std::uint32_t>(in);
  h.bin_len = get_le<std::uint32_t>(in);
  return h;
}

namespace {

std::string head_with_room(MessageType type, std::uint64_t request_id, std::string_view json,
                           std::size_t binary_size, std::size_t room) {
  FrameHeader header;
  header.type = static_cast<std::uint16_t>(type);
  header.request_id = request_id;
  header.json_len = static_cast<std::uint32_t>(json.size());
  header.bin_len = static_cast<std::uint32_t>(binary_size);
  // Appended rather than zero-filled and then copied over.
  std::string out;
  out.reserve(kHeaderSize + json.size() + room);
  out.resize(kHeaderSize);
  encode_header(header, out.data());
  out.append(json);
  return out;
}

}  // namespace

std::string encode_frame_head(MessageType type, std::uint64_t request_id, std::string_view json,
                              std::size_t binary_size) {
  return head_with_room(type, request_id, json, binary_size, 0);
}

std::string encode_frame(MessageType type, std::uint64_t request_id, std::string_view json,
                         std::string_view binary) {
  auto out = head_with_room(type, request_id, json, binary.size(), binary.size());
  out.append(binary);
  return out;
}

std::string encode_frame(const Frame& frame) {
  return encode_frame(frame.type, frame.request_id, frame.json, frame.binary);
}

bool write_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::optional<Error> validate_header(const FrameHeader& h, std::size_t max_frame_bytes) {
  if (h.magic != kMagic) return make_error(ErrorKind::bad_input, "bad frame magic");
  if (h.version != kVersion) {
    return make_error(ErrorKind::bad_input,
                      "unsupported protocol version " + std::to_string(h.version));
  }
  if (!is_known_type(h.type)) {
    return make_error(ErrorKind::bad_input, "unknown message type " + std::to_string(h.type));
  }
  const std::uint64_t total = kHeaderSize + std::uint64_t{h.json_len} + h.bin_len;
  if (total > max_frame_bytes) {
    return make_error(ErrorKind::too_large, "frame of " + std::to_string(total) +
                                                " bytes exceeds the limit of " +
                                                std::to_string(max_frame_bytes));
  }
  return std::nullopt;
}

void FrameDecoder::feed(std::string_view bytes) {
  if (error_) return;
  // Compact lazily so a stream of small frames does not copy the buffer on every frame.
  if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

std::optional<Frame> FrameDecoder::next() {
  if (error_ || buffered() < kHeaderSize) return std::nullopt;
  const char* start = buffer_.data() + consumed_;
  const FrameHeader h = decode_header(start);
  if (auto err = validate_header(h, max_frame_bytes_)) {
    error_ = std::move(err);
    return std::nullopt;
  }
  const std::size_t total = kHeaderSize + std::size_t{h.json_len} + h.bin_len;
  if (buffered() < total) return std::nullopt;
  Frame frame;
  frame.type = static_cast<MessageType>(h.type);
  frame.request_id = h.request_id;
  frame.json.assign(start + kHeaderSize, h.json_len);
  frame.binary.assign(start + kHeaderSize + h.json_len, h.bin_len);
  consumed_ += total;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  return frame;
}

}  // namespace respawn::ipc
