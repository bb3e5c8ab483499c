#pragma once
// Maps an HTTP method and target to a route. Pure and Beast-free so it is unit-testable;
// thread-safe.
#include <string>
#include <string_view>

namespace respawn {

enum class RouteId {
  server_metadata,     // GET /v2
  health_live,         // GET /v2/health/live
  health_ready,        // GET /v2/health/ready
  model_metadata,      // GET /v2/models/{m}[/versions/{v}]
  model_config,        // GET /v2/models/{m}[/versions/{v}]/config (Triton's model configuration)
  model_stats,         // GET /v2/models[/{m}[/versions/{v}]]/stats (Triton's statistics extension)
  model_ready,         // GET /v2/models/{m}[/versions/{v}]/ready
  infer,               // POST /v2/models/{m}[/versions/{v}]/infer
  generate,            // POST /v2/models/{m}[/versions/{v}]/generate
  generate_stream,     // POST /v2/models/{m}[/versions/{v}]/generate_stream (Server-Sent Events)
  openai_completions,  // POST /v1/completions
  openai_chat,         // POST /v1/chat/completions
  openai_models,       // GET /v1/models
  tokenize,            // POST /tokenize (vLLM's shape)
  detokenize,          // POST /detokenize
  metrics,             // GET /metrics
  admin_workers,       // GET /admin/workers
  admin_policy,        // GET or PATCH /admin/policy
  admin_recycle,       // POST /admin/recycle[?now=1]
  admin_reload,        // POST /admin/reload
  admin_fault,         // PUT /admin/fault (with --enable-fault-injection)
  admin_quarantine,    // GET or DELETE /admin/quarantine, DELETE /admin/quarantine/{id}
  admin_events,        // GET /admin/events (Server-Sent Events for the status page)
  status_page,         // GET / or /status (the status page's HTML; no data in it)
  shm_status,          // GET /v2/systemsharedmemory[/region/{r}]/status
  shm_register,        // POST /v2/systemsharedmemory/region/{r}/register
  shm_unregister,      // POST /v2/systemsharedmemory[/region/{r}]/unregister
  cuda_shm,            // /v2/cudasharedmemory/... (refused: not supported)
  method_not_allowed,
  not_found,
};

struct Route {
  RouteId id = RouteId::not_found;
  std::string model;               // for model routes
  std::string version;             // for model routes: the {v} of /versions/{v}, if given
  std::string allow;               // for method_not_allowed: the method the path takes
  std::string item;                // admin_quarantine: an entry's id; shm_*: a region's name
  std::string_view label() const;  // a bounded name for metrics labels
};

// The same label for a route id (Route::label() is route_label(id)).
std::string_view route_label(RouteId id);

Route match_route(std::string_view method, std::string_view target);

}  // namespace respawn
