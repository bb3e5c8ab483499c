#pragma once
// The supervisor's end of the worker socket: a read loop that decodes frames and a write
// queue that sends them in order. Any read error, EOF or malformed frame closes the channel
// and is reported once through on_close, with a reason. Must be owned by a shared_ptr; lives
// on the I/O thread (not thread-safe).
#include <boost/asio/local/stream_protocol.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "respawn/frame.hpp"

namespace respawn {

class IpcChannel : public std::enable_shared_from_this<IpcChannel> {
 public:
  using FrameHandler = std::function<void(ipc::Frame)>;
  // `protocol` is true when the peer sent bytes that are not a valid frame.
  using CloseHandler = std::function<void(const std::string& reason, bool protocol)>;

  IpcChannel(boost::asio::local::stream_protocol::socket socket, std::size_t max_frame_bytes);

  void start(FrameHandler on_frame, CloseHandler on_close);
  void send(const ipc::Frame& frame);
  void send_raw(std::string encoded);  // an already encoded frame
  // A frame as its encoded head (encode_frame_head) and its binary, written from `binary`
  // itself (no copy): bytes that `owner` holds, which the write keeps alive until it is done.
  void send_parts(std::string head, std::shared_ptr<const std::string> owner,
                  std::string_view binary);
  void close();  // no on_close call for a close we asked for
  bool open() const { return socket_.is_open(); }

 private:
  void read_more();
  void write_next();
  void fail(const std::string& reason, bool protocol);

  boost::asio::local::stream_protocol::socket socket_;
  ipc::FrameDecoder decoder_;
  std::string read_buffer_;
  struct Outgoing {
    std::string head;
    std::shared_ptr<const std::string> owner;  // holds `binary`; may be null
    std::string_view binary;
  };
  std::deque<Outgoing> outbox_;
  FrameHandler on_frame_;
  CloseHandler on_close_;
};

}  // namespace respawn
