#pragma once
// The HTTP API's handlers (see docs/http-api.md): KServe v2 metadata, health and infer, the
// Triton generate extension, Prometheus metrics and the admin status. Handlers take a parsed
// request and answer through `respond`, exactly once, possibly later (after the worker
// answered). They never touch sockets. A large JSON body is parsed on a helper thread so that
// it does not stall the I/O thread; everything else runs on the I/O thread. The scheduler,
// metrics and options must outlive it.
#include <boost/asio/thread_pool.hpp>

#include "http/admin_events.hpp"
#include "http/http_types.hpp"
#include "http/model_stats.hpp"
#include "http/router.hpp"
#include "http/shared_memory.hpp"
#include "http/text_model.hpp"
#include "metrics.hpp"
#include "respawn/generate_request.hpp"
#include "scheduling/scheduler.hpp"
#include "serve_options.hpp"

namespace respawn {

// Runs `handler`; an exception it throws (a bug) is counted and answered 500 with a JSON body
// through `respond` (a copy: the handler may have moved its own away). No exception escapes.
void run_guarded(Metrics& metrics, Respond respond, const std::function<void()>& handler);

// Prompts from this size on are tokenized on the helper thread, off the I/O thread.
inline constexpr std::size_t kTokenizeOffloadBytes = 64u << 10;

class Api {
 public:
  Api(Scheduler& scheduler, Metrics& metrics, const ServeOptions& options);
  ~Api();
  // Its callbacks capture `this`: never copied or moved (which the deleted copy also forbids).
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // Never throws: a handler's exception (a bug) becomes a 500 JSON answer, and is counted.
  void handle(HttpRequest request, const RequestContext& context, Respond respond);
  // The model's tokenizer and chat template (--tokenizer); byte-level until set.
  void set_text_model(std::shared_ptr<const TextModel> text) { text_ = std::move(text); }
  // Class labels for classification answers (--labels).
  void set_labels(std::vector<std::string> labels) { labels_ = std::move(labels); }
  // The server drains: ends the status page's event streams (GET /admin/events) and refuses
  // new ones, so that they hold nothing open.
  void stop_events() { events_.stop(); }

 private:
  // `body` is the parsed JSON body of a route that takes one, else null.
  void handle_route(const Route& route, HttpRequest& request, const nlohmann::json* body,
                    const RequestContext& context, Respond& respond);
  void handle_admin(const Route& route, const HttpRequest& request, const nlohmann::json* body,
                    Respond& respond);
  std::optional<HttpResponse> admin_refusal(const HttpRequest& request,
                                            const RequestContext& context) const;
  HttpResponse patch_policy(const nlohmann::json& body);
  // POST /admin/reload: the tokenizer files (if any), then the model, are read again.
  void reload(Respond respond);
  void reload_model(std::shared_ptr<const TextModel> text, Respond respond);
  nlohmann::json workers_body() const;  // GET /admin/workers
  nlohmann::json events_snapshot();     // the first event of GET /admin/events
  // POST /tokenize and /detokenize (api_tokenize.cpp); a long prompt is tokenized on the
  // helper thread.
  void tokenize(const HttpRequest& request, const nlohmann::json& body, Respond respond);
  HttpResponse detokenize(const nlohmann::json& body) const;
  HttpResponse put_fault(const nlohmann::json& body);
  // The X-Respawn-Fault header, when fault injection is on: added to the IPC request.
  std::optional<Error> add_fault(const HttpRequest& request, nlohmann::json& ipc_request) const;
  // Completes a generate job and queues it: `render` (the chat template, if any) gives the
  // prompt; with a tokenizer, the prompt's ids, the EOS ids and the context check
  // (`prompt_param` names the field a too-long prompt came from); then the IPC payload and
  // memory weight. A long prompt or body is rendered and encoded on the helper thread.
  void submit_generate(const HttpRequest& request, GenerateRequest params, bool add_special_tokens,
                       const char* prompt_param, Job job, const RequestContext& context,
                       Respond respond, std::function<Result<std::string>()> render = nullptr);
  HttpResponse server_metadata() const;
  // /v2/systemsharedmemory and /v2/cudasharedmemory (Triton's shared memory extension).
  HttpResponse shared_memory(const Route& route, const nlohmann::json* body);
  void record(const std::string& route, int status, std::chrono::steady_clock::time_point since);
  HttpResponse ready_response(bool model_route) const;
  HttpResponse model_metadata() const;
  HttpResponse model_config() const;
  HttpResponse metrics();
  // Takes the body of a binary request (its tensor bytes go to the worker as they are).
  void infer(HttpRequest& request, const nlohmann::json& body, const RequestContext& context,
             Respond respond);
  void generate(const HttpRequest& request, const nlohmann::json& body,
                const RequestContext& context, Respond respond);
  void generate_stream(const HttpRequest& request, const nlohmann::json& body,
                       const RequestContext& context, Respond respond);
  // POST /v1/completions and /v1/chat/completions (chat when `chat`), plain or streamed.
  void openai_generate(const HttpRequest& request, const nlohmann::json& body,
                       const RequestContext& context, bool chat, Respond respond);
  // The generate job for a request (Triton generate extension body), or why it is invalid.
  struct GenerateJob {
    GenerateRequest params;
    Job job;
  };
  Result<GenerateJob> generate_job(const HttpRequest& request, const nlohmann::json& body) const;
  // Queues the job; a refusal is answered at once. If the client leaves before its answer, the
  // job is cancelled.
  void submit(Job job, const RequestContext& context, Respond& respond);

  Scheduler& scheduler_;
  std::int64_t started_unix_;  // for /v1/models "created"
  std::uint64_t next_openai_id_ = 1;
  Metrics& metrics_;
  const ServeOptions& options_;
  std::shared_ptr<const TextModel> text_ = std::make_shared<TextModel>();
  std::vector<std::string> labels_;         // --labels: line i names class i
  ModelStats stats_;                        // GET /v2/models/stats
  boost::asio::thread_pool parse_pool_{1};  // large JSON bodies, long prompts to tokenize
  AdminEvents events_;                      // GET /admin/events
  SharedMemoryRegistry shm_;                // /v2/systemsharedmemory (--allow-client-shm)
};

}  // namespace respawn
