#include "worker_server.hpp"

#include <unistd.h>

#include <poll.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "generator.hpp"
#include "respawn/fault.hpp"
#include "respawn/generate_request.hpp"
#include "respawn/proc_stats.hpp"

namespace respawn::worker {
void report_load_failure(int fd, const std::string& reason) {
  const WorkerError error{WorkerErrorKind::internal, reason, false};
  ipc::write_all(fd, ipc::encode_frame({ipc::MessageType::error, 0, to_json(error).dump(), {}}));
}

int WorkerServer::run() {
  auto ready = runner_.info();
  ready["pid"] = ::getpid();
  if (!send({ipc::MessageType::ready, 0, ready.dump(), {}})) return 1;
  while (true) {
    while (!pending_.empty()) {
      const auto frame = std::move(pending_.front());
      pending_.pop_front();
      if (!handle(frame)) return healthy_ ? 0 : 3;
    }
    if (closed_) return 0;  // the supervisor closed its end
    if (!read_available(true)) return decoder_.error() ? 1 : 0;
  }
}

bool WorkerServer::read_available(bool block) {
  if (!block) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
  }
  char chunk[64 * 1024];
  ssize_t n;
  do {
    n = ::read(fd_, chunk, sizeof chunk);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    closed_ = true;
    return false;
  }
  decoder_.feed(std::string_view(chunk, static_cast<std::size_t>(n)));
  while (auto frame = decoder_.next()) pending_.push_back(std::move(*frame));
  if (decoder_.error()) {
    spdlog::error("bad frame from the supervisor: {}", decoder_.error()->message);
    closed_ = true;
    return false;
  }
  return true;
}

bool WorkerServer::cancel_requested(std::uint64_t id) {
  if (!read_available(false)) return true;  // the supervisor is gone: stop working
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->type == ipc::MessageType::cancel && it->request_id == id) {
      pending_.erase(it);
      return true;
    }
  }
  return false;
}

bool WorkerServer::send(const ipc::Frame& frame) {
  return ipc::write_all(fd_, ipc::encode_frame(frame));
}

void WorkerServer::send_error(std::uint64_t id, const WorkerError& error) {
  if (!error.healthy) healthy_ = false;
  send({ipc::MessageType::error, id, to_json(error).dump(), {}});
}

void WorkerServer::send_result(std::uint64_t id, nlohmann::json reply, std::string binary) {
  reply["pid"] = ::getpid();
  reply["rss_bytes"] = rss_bytes(0);
  send({ipc::MessageType::result, id, reply.dump(), std::move(binary)});
}

bool WorkerServer::handle(const ipc::Frame& frame) {
  const auto request = nlohmann::json::parse(frame.json, nullptr, false);
  switch (frame.type) {
    case ipc::MessageType::infer:
    case ipc::MessageType::generate:
      if (inject_fault(frame.request_id, request)) break;
      if (frame.type == ipc::MessageType::infer) {
        handle_infer(frame, request);
      } else {
        handle_generate(frame, request);
      }
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

bool WorkerServer::inject_fault(std::uint64_t id, const nlohmann::json& request) {
  if (!fault_injection_ || !request.is_object() || !request.contains("fault")) return false;
  const auto fault = parse_fault(request["fault"].is_string() ? request["fault"].get<std::string>()
                                                              : std::string());
  if (!fault || is_start_fault(*fault)) {
    send_error(id, {WorkerErrorKind::bad_input, "unknown fault " + request["fault"].dump(), true});
    return true;
  }
  spdlog::warn("injected fault for request {}: {}", id, request["fault"].dump());
  switch (fault->kind) {
    case Fault::Kind::crash:
      std::abort();
    case Fault::Kind::hang:
      while (true) std::this_thread::sleep_for(std::chrono::hours(1));
    case Fault::Kind::oom:
      send_error(id, runner_.allocate_too_much());
      return true;
    case Fault::Kind::oom_fatal:
      send_error(id, {WorkerErrorKind::oom, "injected: out of memory, state lost", false});
      return true;
    case Fault::Kind::cuda_error:
      send_error(id, {WorkerErrorKind::cuda_error,
                      "injected: an illegal memory access was encountered", false});
      return true;
    case Fault::Kind::malformed:
      ipc::write_all(fd_, std::string(64, '\x5a'));
      return true;
    case Fault::Kind::slow:
      std::this_thread::sleep_for(std::chrono::milliseconds(fault->ms));
      return false;
    default:
      return false;
  }
}

void WorkerServer::handle_infer(const ipc::Frame& frame, const nlohmann::json& request) {
  auto inputs = parse_tensor_list(
      request.is_object() ? request.value("inputs", nlohmann::json()) : nlohmann::json(),
      frame.binary);
  if (!inputs) {
    return send_error(frame.request_id, {WorkerErrorKind::bad_input, inputs.error().message, true});
  }
  auto out = runner_.infer(*inputs, frame.binary);
  if (!out) return send_error(frame.request_id, out.error());
  nlohmann::json reply = {{"outputs", nlohmann::json::array()}};
  for (const auto& t : out->tensors) reply["outputs"].push_back(to_json(t));
  send_result(frame.request_id, std::move(reply), std::move(out->blob));
}

void WorkerServer::handle_generate(const ipc::Frame& frame, const nlohmann::json& request) {
  if (runner_.task() != "generate") {
    return send_error(frame.request_id,
                      {WorkerErrorKind::bad_input, "this model's task is not generate", true});
  }
  auto params = generate_request_from_json(request);
  if (!params) {
    return send_error(frame.request_id, {WorkerErrorKind::bad_input, params.error().message, true});
  }
  const auto logits = [this](const std::vector<std::int64_t>& ids) {
    return runner_.next_token_logits(ids);
  };
  // A token frame per step: the text that became final (for streaming) and, even when empty,
  // progress for the supervisor's hang detection.
  const auto on_text = [this, id = frame.request_id](std::string_view chunk) {
    send({ipc::MessageType::token, id, nlohmann::json{{"text", chunk}}.dump(), {}});
  };
  const auto cancelled = [this, id = frame.request_id] { return cancel_requested(id); };
  auto out = generate_text(*params, logits, runner_.max_context(), on_text, cancelled);
  if (!out) return send_error(frame.request_id, out.error());
  send_result(frame.request_id, {{"text_output", out->text},
                                 {"finish_reason", out->finish_reason},
                                 {"prompt_tokens", out->prompt_tokens},
                                 {"completion_tokens", out->completion_tokens},
                                 {"seed", out->seed}});
}

}  // namespace respawn::worker
