#include "worker_server.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>
#include <cerrno>

#include "generator.hpp"
#include "respawn/generate_request.hpp"
#include "respawn/proc_stats.hpp"

namespace respawn::worker {
namespace {

bool write_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

void report_load_failure(int fd, const std::string& reason) {
  const WorkerError error{WorkerErrorKind::internal, reason, false};
  write_all(fd, ipc::encode_frame({ipc::MessageType::error, 0, to_json(error).dump(), {}}));
}

int WorkerServer::run() {
  auto ready = runner_.info();
  ready["pid"] = ::getpid();
  if (!send({ipc::MessageType::ready, 0, ready.dump(), {}})) return 1;
  std::string chunk(64 * 1024, '\0');
  while (true) {
    const ssize_t n = ::read(fd_, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return 0;  // the supervisor closed its end
    if (n < 0) return 1;
    decoder_.feed(std::string_view(chunk.data(), static_cast<std::size_t>(n)));
    while (auto frame = decoder_.next()) {
      if (!handle(*frame)) return healthy_ ? 0 : 3;
    }
    if (decoder_.error()) {
      spdlog::error("bad frame from the supervisor: {}", decoder_.error()->message);
      return 1;
    }
  }
}

bool WorkerServer::send(const ipc::Frame& frame) {
  return write_all(fd_, ipc::encode_frame(frame));
}

void WorkerServer::send_error(std::uint64_t id, const WorkerError& error) {
  if (!error.healthy) healthy_ = false;
  send({ipc::MessageType::error, id, to_json(error).dump(), {}});
}

bool WorkerServer::handle(const ipc::Frame& frame) {
  switch (frame.type) {
    case ipc::MessageType::infer:
      handle_infer(frame);
      break;
    case ipc::MessageType::generate:
      handle_generate(frame);
      break;
    case ipc::MessageType::shutdown:
      return false;
    case ipc::MessageType::cancel:
      break;  // requests run to completion one at a time
    default:
      spdlog::warn("ignoring unexpected {} frame", ipc::to_string(frame.type));
      break;
  }
  // An unhealthy worker (sticky CUDA error) has reported it; it stops instead of serving on.
  return healthy_;
}

void WorkerServer::handle_infer(const ipc::Frame& frame) {
  const auto meta = nlohmann::json::parse(frame.json, nullptr, false);
  auto inputs = parse_tensor_list(
      meta.is_object() ? meta.value("inputs", nlohmann::json()) : nlohmann::json(), frame.binary);
  if (!inputs) {
    return send_error(frame.request_id, {WorkerErrorKind::bad_input, inputs.error().message, true});
  }
  auto out = runner_.infer(*inputs, frame.binary);
  if (!out) return send_error(frame.request_id, out.error());
  nlohmann::json reply = {{"outputs", nlohmann::json::array()}, {"rss_bytes", rss_bytes(0)}};
  for (const auto& t : out->tensors) reply["outputs"].push_back(to_json(t));
  send({ipc::MessageType::result, frame.request_id, reply.dump(), std::move(out->blob)});
}

void WorkerServer::handle_generate(const ipc::Frame& frame) {
  if (runner_.task() != "generate") {
    return send_error(frame.request_id,
                      {WorkerErrorKind::bad_input, "this model's task is not generate", true});
  }
  auto request = generate_request_from_json(nlohmann::json::parse(frame.json, nullptr, false));
  if (!request) {
    return send_error(frame.request_id,
                      {WorkerErrorKind::bad_input, request.error().message, true});
  }
  const auto logits = [this](const std::vector<std::int64_t>& ids) {
    return runner_.next_token_logits(ids);
  };
  auto out = generate_text(*request, logits, runner_.max_context());
  if (!out) return send_error(frame.request_id, out.error());
  const nlohmann::json reply = {{"text_output", out->text},
                                {"finish_reason", out->finish_reason},
                                {"prompt_tokens", out->prompt_tokens},
                                {"completion_tokens", out->completion_tokens},
                                {"seed", out->seed},
                                {"rss_bytes", rss_bytes(0)}};
  send({ipc::MessageType::result, frame.request_id, reply.dump(), {}});
}

}  // namespace respawn::worker
