#include "worker_slot.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <cmath>
#include <cstring>
#include <random>

#include "respawn/json_util.hpp"
#include "respawn/proc_stats.hpp"
#include "respawn/worker_error.hpp"

namespace respawn {

namespace asio = boost::asio;
namespace bp = boost::process::v2;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kChildFd = 3;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

// posix_spawn rather than Boost 1.81's launcher, which corrupts its argv buffer (and drops
// the error_code in its io_context overload). The socket's child end becomes fd 3 (dup2 also
// clears close-on-exec) and every other descriptor above it is closed in the child, so no
// client socket or listener leaks into the worker.
Result<pid_t> spawn_worker_process(const std::string& exe, const std::vector<std::string>& args,
                                   int child_fd) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_fd, kChildFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, kChildFd + 1);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return make_error(ErrorKind::internal, std::strerror(rc));
  return pid;
}

}  // namespace

std::string_view to_string(WorkerState state) {
  switch (state) {
    case WorkerState::stopped:
      return "stopped";
    case WorkerState::spawning:
      return "spawning";
    case WorkerState::ready:
      return "ready";
    case WorkerState::busy:
      return "busy";
    case WorkerState::exited:
      return "exited";
  }
  return "unknown";
}

WorkerSlot::WorkerSlot(asio::io_context& io, const ServeOptions& options, Metrics& metrics)
    : io_(io), options_(options), metrics_(metrics), restart_timer_(io) {}

WorkerSlot::~WorkerSlot() {
  // Normally stop() has reaped the worker; this is the last line of defence against an orphan.
  if (process_) {
    boost::system::error_code ignored;
    process_->terminate(ignored);
    process_->detach();
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
}

void WorkerSlot::start() {
  spawn();
}

void WorkerSlot::spawn() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    spdlog::error("socketpair failed: {}", std::strerror(errno));
    ++failed_starts_;
    return schedule_restart();
  }
  if (fds[1] == kChildFd) {  // make sure dup2 really copies, so close-on-exec is cleared
    const int moved = ::fcntl(fds[1], F_DUPFD_CLOEXEC, kChildFd + 1);
    ::close(fds[1]);
    fds[1] = moved;
  }
  std::vector<std::string> args = {"--ipc-fd",     std::to_string(kChildFd),
                                   "--parent-pid", std::to_string(::getpid()),
                                   "--model",      options_.model,
                                   "--device",     options_.device,
                                   "--threads",    std::to_string(options_.worker_threads)};
  if (!options_.task.empty()) args.insert(args.end(), {"--task", options_.task});
  const auto pid = spawn_worker_process(options_.worker_bin, args, fds[1]);
  ::close(fds[1]);
  if (!pid) {
    ::close(fds[0]);
    spdlog::error("cannot start worker {}: {}", options_.worker_bin, pid.error().message);
    last_exit_reason_ = "load_failure";
    metrics_.on_worker_exit("load_failure");
    ++failed_starts_;
    return schedule_restart();
  }
  // Boost.Process v2 attaches to the pid (a pidfd) so the exit is awaited asynchronously.
  process_.emplace(io_.get_executor(), *pid);
  pid_ = process_->id();
  ++starts_;
  served_ = 0;
  reached_ready_ = false;
  exit_reason_.clear();
  metrics_.on_worker_start();
  state_ = WorkerState::spawning;
  spawned_at_ = Clock::now();
  spdlog::info("worker {} spawned ({})", pid_, options_.model);

  channel_ = std::make_shared<IpcChannel>(
      asio::local::stream_protocol::socket(io_, asio::local::stream_protocol(), fds[0]),
      ipc::kDefaultMaxFrameBytes);
  std::weak_ptr<WorkerSlot> weak = shared_from_this();
  channel_->start(
      [weak](ipc::Frame frame) {
        if (auto self = weak.lock()) self->on_frame(std::move(frame));
      },
      [weak](const std::string& reason, bool protocol) {
        if (auto self = weak.lock()) self->on_channel_closed(reason, protocol);
      });
  process_->async_wait([weak](boost::system::error_code, int) {
    if (auto self = weak.lock()) self->on_reaped(self->process_->native_exit_code());
  });
}

void WorkerSlot::on_frame(ipc::Frame frame) {
  switch (frame.type) {
    case ipc::MessageType::ready:
      if (state_ == WorkerState::spawning) return on_ready(frame);
      break;
    case ipc::MessageType::result:
    case ipc::MessageType::error:
      if (inflight_ && frame.request_id == inflight_id_) return on_answer(std::move(frame));
      if (frame.type == ipc::MessageType::error && frame.request_id == 0 && !reached_ready_) {
        const auto error = worker_error_from_json(parse_json(frame.json));
        spdlog::error("worker {} failed to load: {}", pid_, error.message);
        exit_reason_ = "load_failure";
        return;
      }
      break;
    case ipc::MessageType::heartbeat:
    case ipc::MessageType::token:
      return;
    default:
      break;
  }
  spdlog::error("worker {} sent an unexpected {} frame (request {})", pid_,
                ipc::to_string(frame.type), frame.request_id);
  kill_worker("protocol");
}

void WorkerSlot::on_ready(const ipc::Frame& frame) {
  auto info = parse_json(frame.json);
  if (!info.is_object()) {
    spdlog::error("worker {} sent a ready frame that is not a JSON object", pid_);
    return kill_worker("protocol");
  }
  model_info_ = std::move(info);
  const double took = seconds_since(spawned_at_);
  metrics_.on_worker_ready(took);
  ready_at_ = Clock::now();
  failed_starts_ = 0;
  reached_ready_ = true;
  state_ = WorkerState::ready;
  metrics_.set_ready(true);
  spdlog::info("worker {} ready in {:.0f} ms on {} (task {})", pid_, took * 1000,
               json_get<std::string>(model_info_, "device", "?"),
               json_get<std::string>(model_info_, "task", "?"));
  if (on_idle_) on_idle_();
}

void WorkerSlot::run(Job job) {
  inflight_id_ = next_request_id_++;
  channel_->send({job.type, inflight_id_, std::move(job.json), std::move(job.binary)});
  inflight_ = std::move(job);
  state_ = WorkerState::busy;
  job_started_ = Clock::now();
  metrics_.set_inflight(1);
}

void WorkerSlot::on_answer(ipc::Frame frame) {
  Job job = std::move(*inflight_);
  inflight_.reset();
  metrics_.set_inflight(0);
  metrics_.on_inference(seconds_since(job_started_));
  ++served_;
  state_ = WorkerState::ready;
  if (frame.type == ipc::MessageType::error) {
    const auto error = worker_error_from_json(parse_json(frame.json));
    job.done(to_client_error(error));
    // A worker that says it is poisoned (a sticky CUDA error) is replaced, not trusted again.
    if (!error.healthy) return kill_worker(std::string(to_string(error.kind)));
  } else {
    job.done(std::move(frame));
  }
  if (state_ == WorkerState::ready && on_idle_) on_idle_();
}

void WorkerSlot::on_channel_closed(const std::string& reason, bool protocol) {
  spdlog::warn("worker {} channel closed: {}", pid_, reason);
  kill_worker(protocol ? "protocol" : (reached_ready_ ? "crash" : "load_failure"));
}

void WorkerSlot::kill_worker(const std::string& reason) {
  if (exit_reason_.empty()) exit_reason_ = reason;
  if (state_ != WorkerState::exited) {
    state_ = WorkerState::exited;
    metrics_.set_ready(false);
  }
  if (channel_) channel_->close();
  boost::system::error_code ignored;
  if (process_) process_->terminate(ignored);  // SIGKILL; on_reaped follows from async_wait
}

void WorkerSlot::on_reaped(int native_status) {
  if (channel_) channel_->close();
  if (exit_reason_.empty()) exit_reason_ = reached_ready_ ? "crash" : "load_failure";
  spdlog::warn("worker {} {} (reason: {}, served {})", pid_, describe_status(native_status),
               exit_reason_, served_);
  metrics_.on_worker_exit(exit_reason_);
  last_exit_reason_ = exit_reason_;
  if (!reached_ready_) ++failed_starts_;  // backoff grows only while workers fail to start
  state_ = WorkerState::exited;
  metrics_.set_ready(false);
  process_.reset();
  channel_.reset();
  pid_ = 0;
  if (inflight_) {
    Job job = std::move(*inflight_);
    inflight_.reset();
    metrics_.set_inflight(0);
    job.done(make_error(ErrorKind::worker_failed,
                        "the worker died while serving this request (" + last_exit_reason_ + ")"));
  }
  if (stopping_) {
    state_ = WorkerState::stopped;
    if (on_stopped_) std::exchange(on_stopped_, nullptr)();
    return;
  }
  schedule_restart();
}

void WorkerSlot::schedule_restart() {
  std::chrono::milliseconds delay{0};
  if (failed_starts_ > 0) {
    const double base = options_.restart_backoff_ms * std::pow(2.0, failed_starts_ - 1);
    static thread_local std::mt19937 rng{std::random_device{}()};
    const double jitter = std::uniform_real_distribution<double>(0.8, 1.2)(rng);
    delay = std::chrono::milliseconds(
        static_cast<long>(std::min<double>(base, options_.restart_backoff_max_ms) * jitter));
  }
  spdlog::info("starting a new worker in {} ms", delay.count());
  restart_timer_.expires_after(delay);
  restart_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopping_) return;
    self->spawn();
  });
}

void WorkerSlot::stop(std::function<void()> done) {
  stopping_ = true;
  restart_timer_.cancel();
  if (!process_) {
    state_ = WorkerState::stopped;
    return done();
  }
  on_stopped_ = std::move(done);
  kill_worker("shutdown");
}

nlohmann::json WorkerSlot::status() const {
  nlohmann::json j = {{"state", to_string(state_)},
                      {"pid", pid_},
                      {"workers_started", starts_},
                      {"requests_served", served_},
                      {"last_exit_reason", last_exit_reason_},
                      {"rss_bytes", pid_ > 0 ? rss_bytes(pid_) : 0}};
  if (ready()) j["age_s"] = seconds_since(ready_at_);
  if (!model_info_.is_null()) j["device"] = json_get<std::string>(model_info_, "device", "");
  return j;
}

}  // namespace respawn
