#include "worker_server.hpp"

#include <poll.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <thread>

#include "respawn/fault.hpp"
#include "respawn/json_util.hpp"

namespace respawn::worker {
namespace {

// Requests that can share a forward: the same inputs with the same dtypes and the same shape
// past the first (batch) dimension.
bool stackable(const std::vector<TensorMeta>& a, const std::vector<TensorMeta>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].datatype != b[i].datatype || a[i].shape.empty() ||
        b[i].shape.empty() || a[i].shape.size() != b[i].shape.size() ||
        !std::equal(a[i].shape.begin() + 1, a[i].shape.end(), b[i].shape.begin() + 1)) {
      return false;
    }
  }
  return true;
}

}  // namespace

void report_load_failure(int fd, const std::string& reason) {
  const WorkerError error{WorkerErrorKind::internal, reason, false};
  ipc::write_all(fd, ipc::encode_frame({ipc::MessageType::error, 0, to_json(error).dump(), {}}));
}

double WorkerServer::BatchMemory::per_weight() const {
  const double grown = peak_bytes > base_bytes ? static_cast<double>(peak_bytes - base_bytes) : 0;
  return grown / static_cast<double>(std::max<std::uint64_t>(weight, 1));
}

int WorkerServer::run() {
  auto ready = runner_.info();
  ready["pid"] = ::getpid();
  ready["batchable"] = runner_.batchable();
  ready["kv_cache"] = runner_.has_kv_cache();
  send({ipc::MessageType::ready, 0, ready.dump(), {}});
  if (!flush()) return 1;
  while (true) {
    const bool idle = tensors_.empty() && generations_.empty() && waiting_generations_.empty();
    if (stopping_ && idle) return 0;
    if (!read_frames(poll_timeout())) return decoder_.error() ? 1 : 0;
    if (!generations_.empty() || !waiting_generations_.empty()) step_generations();
    if (tensor_batch_due()) run_tensor_batch();
    if (empty_cache_ && tensors_.empty() && generations_.empty()) runner_.release_cached_memory();
    if (!flush()) return 1;
    // An unhealthy worker (sticky CUDA error) has reported it; it stops instead of serving on.
    if (!healthy_) return 3;
  }
}

std::optional<std::chrono::microseconds> WorkerServer::poll_timeout() const {
  using std::chrono::microseconds;
  if (!generations_.empty() || !waiting_generations_.empty() || tensor_batch_due()) {
    return microseconds(0);
  }
  if (tensors_.empty()) return std::nullopt;
  const auto waited =
      std::chrono::duration_cast<microseconds>(Clock::now() - tensors_.front().arrived);
  return std::max(microseconds(0), max_batch_delay_ - waited);
}

bool WorkerServer::read_frames(std::optional<std::chrono::microseconds> timeout) {
  if (!flush()) return false;
  for (bool first = true;; first = false) {
    pollfd p{fd_, POLLIN, 0};
    timespec ts{};
    if (first && timeout) {
      ts.tv_sec = timeout->count() / 1000000;
      ts.tv_nsec = (timeout->count() % 1000000) * 1000;
    }
    const int ready = ::ppoll(&p, 1, first && !timeout ? nullptr : &ts, nullptr);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return true;  // nothing (more) to read now
    char chunk[64 * 1024];
    ssize_t n;
    do {
      n = ::read(fd_, chunk, sizeof chunk);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    decoder_.feed(std::string_view(chunk, static_cast<std::size_t>(n)));
    while (auto frame = decoder_.next()) take_frame(std::move(*frame));
    if (decoder_.error()) {
      spdlog::error("bad frame from the supervisor: {}", decoder_.error()->message);
      return false;
    }
  }
}

void WorkerServer::take_frame(ipc::Frame frame) {
  switch (frame.type) {
    case ipc::MessageType::infer:
      return take_infer(std::move(frame));
    case ipc::MessageType::generate:
      return take_generate(std::move(frame));
    case ipc::MessageType::cancel:
      // A running generation stops before its next step; a tensor request is one forward and
      // runs to its end.
      for (auto& g : generations_) {
        if (g.id == frame.request_id) g.seq.cancel();
      }
      for (auto& g : waiting_generations_) {
        if (g.id == frame.request_id) g.seq.cancel();
      }
      return;
    case ipc::MessageType::configure:
      return configure(parse_json(frame.json));
    case ipc::MessageType::shutdown:
      stopping_ = true;
      return;
    default:
      spdlog::warn("ignoring unexpected {} frame", ipc::to_string(frame.type));
  }
}

void WorkerServer::configure(const nlohmann::json& config) {
  max_batch_size_ = std::max<std::size_t>(1, json_get<std::size_t>(config, "max_batch_size", 8));
  max_batch_delay_ =
      std::chrono::microseconds(json_get<std::int64_t>(config, "max_batch_delay_us", 1000));
  measure_memory_ = json_get<bool>(config, "measure_memory", false);
  empty_cache_ = json_get<bool>(config, "empty_cache_after_request", false);
  fit_kv_cache();
}

void WorkerServer::fit_kv_cache() {
  // One KV-cache slot per sequence that may run. Resized only while none runs; until then,
  // sequences that find no free slot recompute their context.
  if (runner_.has_kv_cache() && generations_.empty() && slot_used_.size() != max_batch_size_) {
    runner_.allocate_kv_cache(max_batch_size_);
    slot_used_.assign(max_batch_size_, false);
  }
}

void WorkerServer::take_infer(ipc::Frame frame) {
  const auto request = parse_json(frame.json);
  TensorJob job{std::move(frame), {}, Clock::now(), false};
  const auto id = job.frame.request_id;
  if (inject_fault(id, request)) return;
  if (fault_injection_ && json_get<std::string>(request, "fault", "") == "oom_if_batched") {
    job.oom_if_batched = true;
  }
  auto inputs = parse_tensor_list(json_field(request, "inputs"), job.frame.binary);
  if (!inputs) return send_error(id, {WorkerErrorKind::bad_input, inputs.error().message, true});
  job.inputs = std::move(*inputs);
  tensors_.push_back(std::move(job));
}

void WorkerServer::take_generate(ipc::Frame frame) {
  const auto id = frame.request_id;
  const auto request = parse_json(frame.json);
  if (inject_fault(id, request)) return;
  if (runner_.task() != "generate") {
    return send_error(id, {WorkerErrorKind::bad_input, "this model's task is not generate", true});
  }
  auto params = generate_request_from_json(request);
  if (!params) return send_error(id, {WorkerErrorKind::bad_input, params.error().message, true});
  const std::int64_t vocab = tokenizer_ ? static_cast<std::int64_t>(tokenizer_->vocab_size()) : 256;
  for (const auto token : params->prompt_ids) {
    if (token >= vocab) {
      return send_error(id, {WorkerErrorKind::bad_input,
                             "prompt id " + std::to_string(token) + " is outside the vocabulary (" +
                                 std::to_string(vocab) + " tokens)",
                             true});
    }
  }
  GenJob job{id,
             Sequence(*params, runner_.max_context(), tokenizer_),
             memory_weight(*params, runner_.max_context()),
             std::nullopt,
             std::nullopt,
             1,
             std::nullopt,
             false};
  waiting_generations_.push_back(std::move(job));  // joins the batch at the next step
}

bool WorkerServer::tensor_batch_due() const {
  if (tensors_.empty()) return false;
  // Waiting for batch-mates only pays while requests arrive together: after a batch of one
  // (a lone client), the next request runs at once instead of paying the delay.
  if (tensors_.size() >= max_batch_size_ || !runner_.batchable() || last_tensor_batch_ <= 1 ||
      stopping_ || !generations_.empty()) {
    return true;
  }
  return Clock::now() - tensors_.front().arrived >= max_batch_delay_;
}

void WorkerServer::run_tensor_batch() {
  // The oldest request and, if the model batches, every later one that stacks with it.
  std::vector<TensorJob> batch;
  batch.push_back(std::move(tensors_.front()));
  tensors_.pop_front();
  if (runner_.batchable()) {
    for (auto it = tensors_.begin(); it != tensors_.end() && batch.size() < max_batch_size_;) {
      if (stackable(batch[0].inputs, it->inputs)) {
        batch.push_back(std::move(*it));
        it = tensors_.erase(it);
      } else {
        ++it;
      }
    }
  }
  last_tensor_batch_ = batch.size();
  std::vector<TensorJob*> group;
  for (auto& job : batch) group.push_back(&job);
  run_tensor_group(group, std::nullopt);
}

void WorkerServer::run_tensor_group(const std::vector<TensorJob*>& group,
                                    std::optional<BatchMemory> oom) {
  std::vector<InferInput> inputs;
  std::uint64_t weight = 0;
  bool injected_oom = false;
  for (const auto* job : group) {
    inputs.push_back({&job->inputs, job->frame.binary});
    weight += job->frame.binary.size();
    injected_oom |= job->oom_if_batched && group.size() > 1;
  }
  begin_measure();
  auto out = injected_oom ? Result<InferResult, WorkerError>(runner_.allocate_too_much())
                          : runner_.infer(inputs);
  if (out) {
    const auto memory = end_measure(group.size(), weight);
    // The whole forward's times, in every request's answer (docs/ipc.md).
    const nlohmann::json compute = {{"input", out->compute.input_ns},
                                    {"infer", out->compute.infer_ns},
                                    {"output", out->compute.output_ns}};
    for (std::size_t i = 0; i < group.size(); ++i) {
      auto& mine = out->outputs[i];
      nlohmann::json reply = {{"outputs", nlohmann::json::array()}, {"compute_ns", compute}};
      for (const auto& t : mine.tensors) reply["outputs"].push_back(to_json(t));
      send_result(group[i]->frame.request_id, std::move(reply), group.size(),
                  measure_memory_ ? std::optional(memory) : std::nullopt, oom,
                  std::move(mine.blob));
    }
    return;
  }
  const WorkerError& error = out.error();
  if (group.size() > 1 && error.healthy) {
    if (error.kind == WorkerErrorKind::oom) {
      // Only this batch is lost: retry it in halves, and tell the supervisor what did not fit.
      spdlog::warn("a batch of {} ran out of memory; retrying it in halves", group.size());
      BatchMemory failed;
      failed.size = group.size();
      failed.weight = weight;
      const auto half = static_cast<std::ptrdiff_t>(group.size() / 2);
      run_tensor_group({group.begin(), group.begin() + half}, failed);
      run_tensor_group({group.begin() + half, group.end()}, failed);
    } else {
      // Probably one bad request: run each alone so only it gets the error.
      for (auto* job : group) run_tensor_group({job}, oom);
    }
    return;
  }
  for (const auto* job : group) send_error(job->frame.request_id, error);
}

void WorkerServer::step_generations() {
  fit_kv_cache();
  while (generations_.size() < max_batch_size_ && !waiting_generations_.empty()) {
    auto& g = generations_.emplace_back(std::move(waiting_generations_.front()));
    waiting_generations_.pop_front();
    for (std::size_t s = 0; s < slot_used_.size(); ++s) {
      if (slot_used_[s]) continue;
      slot_used_[s] = true;
      g.slot = s;
      break;
    }
  }
  // Those cancelled since the last step (some before they started) end now.
  const auto finish_done = [this](auto& list) {
    for (auto it = list.begin(); it != list.end();) {
      if (!it->seq.done()) {
        ++it;
        continue;
      }
      finish_generation(*it);
      it = list.erase(it);
    }
  };
  finish_done(waiting_generations_);
  finish_done(generations_);
  if (generations_.empty()) return;

  std::uint64_t weight = 0;
  for (const auto& g : generations_) weight += g.weight;
  const std::size_t step_size = generations_.size();
  begin_measure();
  const auto logits = next_logits();
  const auto memory = end_measure(step_size, weight);
  std::size_t i = 0;
  for (auto it = generations_.begin(); it != generations_.end(); ++i) {
    auto& g = *it;
    if (!logits[i]) {  // its forward failed; the error is sent
      release_slot(g);
      it = generations_.erase(it);
      continue;
    }
    g.batch_size = std::max(g.batch_size, step_size);
    if (measure_memory_ && (!g.memory || memory.per_weight() > g.memory->per_weight())) {
      g.memory = memory;
    }
    // A token frame per step: the text that became final (for streaming) and, even when
    // empty, progress for the supervisor's hang detection.
    const std::string chunk = g.seq.advance(*logits[i]);
    if (!g.seq.done()) {
      send(token_frame(g, chunk));
      ++it;
      continue;
    }
    finish_generation(g);
    it = generations_.erase(it);
  }
}

std::vector<std::optional<std::vector<float>>> WorkerServer::next_logits() {
  std::vector<GenJob*> jobs;  // by row
  for (auto& g : generations_) jobs.push_back(&g);
  std::vector<std::optional<std::vector<float>>> out(jobs.size());
  const auto fail = [&](const std::vector<std::size_t>& rows, const WorkerError& error) {
    for (const auto row : rows) send_error(jobs[row]->id, error);
  };
  std::vector<std::size_t> cached, recompute;
  std::vector<ModelRunner::DecodeRow> decode;
  std::vector<const std::vector<std::int64_t>*> contexts;
  std::uint64_t recompute_weight = 0;
  for (std::size_t row = 0; row < jobs.size(); ++row) {
    auto& g = *jobs[row];
    if (g.slot && g.seq.length() > runner_.max_context()) release_slot(g);  // past the cache
    if (!g.slot) {
      recompute.push_back(row);
      contexts.push_back(&g.seq.context());
      recompute_weight += g.weight;
    } else if (!g.prefilled) {
      // A newcomer: its whole context goes into its slot, and gives its next token.
      auto first = runner_.prefill(g.seq.context(), *g.slot);
      if (!first) {
        fail({row}, first.error());
        continue;
      }
      g.prefilled = true;
      out[row] = std::move(*first);
    } else {
      cached.push_back(row);
      decode.push_back({g.seq.last_token(), static_cast<std::int64_t>(g.seq.length()) - 1,
                        static_cast<std::int64_t>(*g.slot)});
    }
  }
  if (!decode.empty()) {
    auto step = runner_.decode_step(decode);
    if (!step) {
      fail(cached, step.error());
    } else {
      for (std::size_t k = 0; k < cached.size(); ++k) out[cached[k]] = std::move((*step)[k]);
    }
  }
  if (contexts.empty()) return out;
  auto logits = runner_.next_token_logits(contexts);
  if (!logits && logits.error().kind == WorkerErrorKind::oom && logits.error().healthy &&
      contexts.size() > 1) {
    // Out of memory for the whole batch: this step runs one sequence at a time instead, and
    // the answers carry what did not fit so the supervisor admits fewer.
    spdlog::warn("a decode step of {} sequences ran out of memory; stepping them one by one",
                 contexts.size());
    BatchMemory failed;
    failed.size = contexts.size();
    failed.weight = recompute_weight;
    std::vector<std::vector<float>> each;
    for (std::size_t k = 0; k < recompute.size(); ++k) {
      jobs[recompute[k]]->oom = failed;
      auto one = runner_.next_token_logits({contexts[k]});
      if (!one) {
        logits = one.error();
        break;
      }
      each.push_back(std::move((*one)[0]));
    }
    if (each.size() == contexts.size()) logits = std::move(each);
  }
  if (!logits) {
    fail(recompute, logits.error());
  } else {
    for (std::size_t k = 0; k < recompute.size(); ++k) out[recompute[k]] = std::move((*logits)[k]);
  }
  return out;
}

void WorkerServer::release_slot(GenJob& job) {
  if (job.slot && *job.slot < slot_used_.size()) slot_used_[*job.slot] = false;
  job.slot.reset();
  job.prefilled = false;
}

namespace {

// [[id, logprob, [[id, logprob], ...]], ...] from entry `from` on: compact, one per token.
nlohmann::json logprob_entries(const std::vector<TokenLogprob>& all, std::size_t from) {
  auto out = nlohmann::json::array();
  for (std::size_t k = from; k < all.size(); ++k) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& [id, lp] : all[k].top) top.push_back({id, lp});
    out.push_back({all[k].id, all[k].logprob, std::move(top)});
  }
  return out;
}

}  // namespace

ipc::Frame WorkerServer::token_frame(GenJob& job, const std::string& text) {
  nlohmann::json token = {{"text", text}};
  const auto& logprobs = job.seq.output().logprobs;
  if (job.logprobs_sent < logprobs.size()) {
    token["logprobs"] = logprob_entries(logprobs, job.logprobs_sent);
    job.logprobs_sent = logprobs.size();
  }
  return {ipc::MessageType::token, job.id, token.dump(), {}};
}

void WorkerServer::finish_generation(GenJob& job) {
  release_slot(job);
  const std::string rest = job.seq.flush();
  // The held-back text, and the logprobs of the last token (a stream's last chunk carries them).
  if (!rest.empty() || job.logprobs_sent < job.seq.output().logprobs.size()) {
    send(token_frame(job, rest));
  }
  const auto& out = job.seq.output();
  nlohmann::json result = {{"text_output", out.text},
                           {"finish_reason", out.finish_reason},
                           {"prompt_tokens", out.prompt_tokens},
                           {"completion_tokens", out.completion_tokens},
                           {"seed", out.seed}};
  if (!out.logprobs.empty()) result["logprobs"] = logprob_entries(out.logprobs, 0);
  send_result(job.id, std::move(result), job.batch_size, job.memory, job.oom);
}

void WorkerServer::begin_measure() {
  if (!measure_memory_) return;
  measure_base_ = runner_.memory().used_bytes;
  runner_.reset_peak_memory();
}

WorkerServer::BatchMemory WorkerServer::end_measure(std::size_t size, std::uint64_t weight) {
  BatchMemory m;
  m.size = size;
  m.weight = weight;
  if (measure_memory_) {
    m.base_bytes = measure_base_;
    m.peak_bytes = std::max(runner_.memory().peak_bytes, measure_base_);
  }
  return m;
}

void WorkerServer::send(const ipc::Frame& frame) {
  out_ += ipc::encode_frame(frame);
}

bool WorkerServer::flush() {
  if (out_.empty()) return true;
  const bool ok = ipc::write_all(fd_, out_);
  out_.clear();
  return ok;
}

void WorkerServer::send_error(std::uint64_t id, const WorkerError& error) {
  if (!error.healthy) healthy_ = false;
  send({ipc::MessageType::error, id, to_json(error).dump(), {}});
}

void WorkerServer::send_result(std::uint64_t id, nlohmann::json reply, std::size_t batch_size,
                               const std::optional<BatchMemory>& memory,
                               const std::optional<BatchMemory>& oom, std::string binary) {
  reply["pid"] = ::getpid();
  reply["batch_size"] = batch_size;
  if (const auto gpu = runner_.gpu_memory_bytes()) reply["gpu_memory_bytes"] = gpu;
  if (memory) {
    reply["memory"] = {{"base_bytes", memory->base_bytes},
                       {"peak_bytes", memory->peak_bytes},
                       {"batch_size", memory->size},
                       {"batch_weight", memory->weight}};
  }
  if (oom) reply["oom"] = {{"batch_size", oom->size}, {"batch_weight", oom->weight}};
  send({ipc::MessageType::result, id, reply.dump(), std::move(binary)});
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
  flush();  // what is already answered goes out before the worker misbehaves
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
    case Fault::Kind::illegal_memory_access:
      send_error(id, runner_.launch_illegal_memory_access());
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

}  // namespace respawn::worker
