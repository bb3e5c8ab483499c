#include "lifecycle/ipc_channel.hpp"

#include <array>
#include <boost/asio/write.hpp>

namespace respawn {

namespace asio = boost::asio;

IpcChannel::IpcChannel(asio::local::stream_protocol::socket socket, std::size_t max_frame_bytes)
    : socket_(std::move(socket)), decoder_(max_frame_bytes), read_buffer_(64 * 1024, '\0') {}

void IpcChannel::start(FrameHandler on_frame, CloseHandler on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  read_more();
}

void IpcChannel::read_more() {
  socket_.async_read_some(
      asio::buffer(read_buffer_),
      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
        if (ec) return self->fail(ec == asio::error::eof ? "socket closed" : ec.message(), false);
        self->decoder_.feed(std::string_view(self->read_buffer_.data(), n));
        while (self->socket_.is_open()) {
          auto frame = self->decoder_.next();
          if (!frame) break;
          self->on_frame_(std::move(*frame));
        }
        if (self->decoder_.error()) return self->fail(self->decoder_.error()->message, true);
        if (self->socket_.is_open()) self->read_more();
      });
}

void IpcChannel::send(const ipc::Frame& frame) {
  send_raw(ipc::encode_frame(frame));
}

void IpcChannel::send_raw(std::string encoded) {
  send_parts(std::move(encoded), nullptr, {});
}

void IpcChannel::send_parts(std::string head, std::shared_ptr<const std::string> owner,
                            std::string_view binary) {
  if (!socket_.is_open()) return;
  outbox_.push_back({std::move(head), std::move(owner), binary});
  if (outbox_.size() == 1) write_next();
}

void IpcChannel::write_next() {
  const auto& next = outbox_.front();
  const std::array<asio::const_buffer, 2> buffers = {
      asio::buffer(next.head), asio::buffer(next.binary.data(), next.binary.size())};
  asio::async_write(socket_, buffers,
                    [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                      if (ec) return self->fail("write failed: " + ec.message(), false);
                      self->outbox_.pop_front();
                      if (!self->outbox_.empty()) self->write_next();
                    });
}

void IpcChannel::fail(const std::string& reason, bool protocol) {
  if (!socket_.is_open()) return;
  close();
  if (on_close_) on_close_(reason, protocol);
}

void IpcChannel::close() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

}  // namespace respawn
