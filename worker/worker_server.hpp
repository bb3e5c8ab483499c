#pragma once
// The worker's side of the IPC: announces readiness, then serves every request the supervisor
// has sent, batched. Tensor requests with compatible shapes are stacked into one forward pass
// (dynamic batching: a batch waits up to max_batch_delay_us to fill, but only while requests
// are arriving together). Generations share one forward per decode step (continuous batching):
// a sequence joins between steps and leaves as soon as it ends. Frames are read between steps,
// so a cancel stops a generation within one step. A batch that runs out of memory is retried in
// halves; the answers say so, and the supervisor's memory budget learns from it. Exits its loop
// when the socket closes (the supervisor is gone) or, after the work in hand, on a shutdown frame.
// Not thread-safe; the runner must outlive it.
#include <chrono>
#include <deque>
#include <list>
#include <optional>

#include "generator.hpp"
#include "model_runner.hpp"
#include "respawn/frame.hpp"
#include "respawn/generate_request.hpp"

namespace respawn::worker {

class WorkerServer {
 public:
  // With fault_injection, a request's "fault" field is obeyed (see fault.hpp).
  // With a tokenizer (which must outlive it), generations sample and decode its ids.
  WorkerServer(int fd, ModelRunner& runner, bool fault_injection,
               const Tokenizer* tokenizer = nullptr)
      : fd_(fd), runner_(runner), fault_injection_(fault_injection), tokenizer_(tokenizer) {}
  // Returns the process exit code: 0 on a clean end, non-zero when the stream broke.
  int run();

 private:
  using Clock = std::chrono::steady_clock;
  // What one forward used, as reported with the answers of its requests (docs/ipc.md).
  struct BatchMemory {
    std::uint64_t base_bytes = 0;
    std::uint64_t peak_bytes = 0;
    std::size_t size = 0;
    std::uint64_t weight = 0;  // the batch's requests' memory weights, summed
    double per_weight() const;
  };
  struct TensorJob {
    ipc::Frame frame;
    std::vector<TensorMeta> inputs;
    Clock::time_point arrived;
    bool oom_if_batched = false;  // injected fault: this request's batch runs out of memory
  };
  struct GenJob {
    std::uint64_t id;
    Sequence seq;
    std::uint64_t weight;               // context tokens
    std::optional<BatchMemory> memory;  // its step that used the most memory per unit of weight
    std::optional<BatchMemory> oom;     // a step that ran out of memory with it
    std::size_t batch_size = 1;         // the most sequences it shared a step with
    std::optional<std::size_t> slot;    // its KV-cache slot, if the model has a cache
    bool prefilled = false;             // the slot holds its context
    std::size_t logprobs_sent = 0;      // its logprobs entries already in token frames
  };

  void take_frame(ipc::Frame frame);
  void take_infer(ipc::Frame frame);
  void take_generate(ipc::Frame frame);
  void configure(const nlohmann::json& config);
  // How long to wait for frames: 0 while generations run or a batch is due, else until the
  // oldest tensor request's delay is up, or forever (nullopt) when there is nothing to do.
  std::optional<std::chrono::microseconds> poll_timeout() const;
  bool tensor_batch_due() const;
  void run_tensor_batch();
  // Runs `group` as one forward; on an out-of-memory error retries it in halves, on other
  // recoverable errors one by one, so only the guilty request gets the error.
  void run_tensor_group(const std::vector<TensorJob*>& group, std::optional<BatchMemory> oom);
  void step_generations();
  // Logits for each running generation (in generations_ order), one forward per kind of step:
  // prefills of newcomers, one cached decode step for the rest, and a recompute of the whole
  // context for those without a slot or past the cache's length. A failed forward fails its
  // sequences (an out-of-memory recompute batch is run one by one first).
  std::vector<std::optional<std::vector<float>>> next_logits();
  void release_slot(GenJob& job);
  void fit_kv_cache();  // as many cache slots as max_batch_size_, when no generation runs
  void finish_generation(GenJob& job);
  // A token frame for `job`: `text`, and the logprobs of its tokens not sent yet (if asked).
  ipc::Frame token_frame(GenJob& job, const std::string& text);
  // Acts out the request's injected fault; true when the request is answered already.
  bool inject_fault(std::uint64_t id, const nlohmann::json& request);
  void begin_measure();
  BatchMemory end_measure(std::size_t size, std::uint64_t weight);

  void send(const ipc::Frame& frame);  // buffered; flush() writes the buffer in one go
  bool flush();
  void send_error(std::uint64_t id, const WorkerError& error);
  void send_result(std::uint64_t id, nlohmann::json reply, std::size_t batch_size,
                   const std::optional<BatchMemory>& memory, const std::optional<BatchMemory>& oom,
                   std::string binary = {});
  // false when the socket closed or broke
  bool read_frames(std::optional<std::chrono::microseconds> timeout);

  int fd_;
  ModelRunner& runner_;
  ipc::FrameDecoder decoder_;
  std::string out_;
  bool stopping_ = false;  // a shutdown frame came: finish the work in hand, then exit
  bool fault_injection_;
  const Tokenizer* tokenizer_;
  bool healthy_ = true;
  // Set by the supervisor's configure frame.
  std::size_t max_batch_size_ = 8;
  std::chrono::microseconds max_batch_delay_{1000};
  bool measure_memory_ = false;
  bool empty_cache_ = false;
  std::uint64_t measure_base_ = 0;  // memory in use when the batch being measured began

  std::deque<TensorJob> tensors_;  // arrival order
  std::size_t last_tensor_batch_ = 1;
  std::list<GenJob> generations_;  // running, at most max_batch_size_
  std::deque<GenJob> waiting_generations_;
  std::vector<bool> slot_used_;  // KV-cache slots held by running generations
};

// Tells the supervisor why loading failed (an error frame with request id 0) before exiting.
void report_load_failure(int fd, const std::string& reason);

}  // namespace respawn::worker
