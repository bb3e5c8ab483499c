// Tests for HTTP routing (supervisor/http/router.hpp).
#include "http/router.hpp"

#include <iterator>
#include <set>
#include <string>
#include <utility>

#include <gtest/gtest.h>

namespace respawn {
namespace {

void expect_route(std::string_view method, std::string_view target, RouteId id,
                  const std::string& model = "") {
  const Route r = match_route(method, target);
  EXPECT_EQ(r.id, id) << method << " " << target << " -> " << r.label();
  EXPECT_EQ(r.model, model) << method << " " << target;
  EXPECT_EQ(r.allow, "") << method << " " << target;
}

void expect_not_allowed(std::string_view method, std::string_view target,
                        const std::string& allow) {
  const Route r = match_route(method, target);
  EXPECT_EQ(r.id, RouteId::method_not_allowed) << method << " " << target << " -> " << r.label();
  EXPECT_EQ(r.allow, allow) << method << " " << target;
}

TEST(Router, ServerRoutes) {
  expect_route("GET", "/v2", RouteId::server_metadata);
  expect_route("GET", "/v2/health/live", RouteId::health_live);
  expect_route("GET", "/v2/health/ready", RouteId::health_ready);
  expect_route("GET", "/metrics", RouteId::metrics);
  expect_route("GET", "/admin/workers", RouteId::admin_workers);
}

TEST(Router, ModelRoutes) {
  expect_route("GET", "/v2/models/demo", RouteId::model_metadata, "demo");
  expect_route("GET", "/v2/models/demo/ready", RouteId::model_ready, "demo");
  expect_route("GET", "/v2/models/demo/config", RouteId::model_config, "demo");
  expect_route("GET", "/v2/models/demo/versions/1/config", RouteId::model_config, "demo");
  EXPECT_EQ(match_route("POST", "/v2/models/demo/config").id, RouteId::method_not_allowed);
  expect_route("POST", "/v2/models/demo/infer", RouteId::infer, "demo");
  expect_route("POST", "/v2/models/demo/generate", RouteId::generate, "demo");
}

TEST(Router, ModelRoutesWithVersion) {
  expect_route("GET", "/v2/models/demo/versions/1", RouteId::model_metadata, "demo");
  expect_route("GET", "/v2/models/demo/versions/1/ready", RouteId::model_ready, "demo");
  expect_route("POST", "/v2/models/demo/versions/2/infer", RouteId::infer, "demo");
  expect_route("POST", "/v2/models/demo/versions/abc/generate", RouteId::generate, "demo");
}

TEST(Router, TheVersionIsKeptForTheHandlerToCheck) {
  EXPECT_EQ(match_route("POST", "/v2/models/demo/versions/2/infer").version, "2");
  EXPECT_EQ(match_route("GET", "/v2/models/demo/versions/1").version, "1");
  EXPECT_EQ(match_route("PUT", "/v2/models/demo/versions/7/ready").version, "7");
  EXPECT_EQ(match_route("POST", "/v2/models/demo/infer").version, "");
}

TEST(Router, StatisticsRoutes) {
  expect_route("GET", "/v2/models/stats", RouteId::model_stats);
  expect_route("GET", "/v2/models/demo/stats", RouteId::model_stats, "demo");
  expect_route("GET", "/v2/models/demo/versions/1/stats", RouteId::model_stats, "demo");
  expect_not_allowed("POST", "/v2/models/stats", "GET");
  expect_not_allowed("DELETE", "/v2/models/demo/stats", "GET");
}

TEST(Router, ModelNameIsTakenVerbatim) {
  expect_route("POST", "/v2/models/my-model_v1.2/infer", RouteId::infer, "my-model_v1.2");
  // A model may be called like an action.
  expect_route("GET", "/v2/models/infer", RouteId::model_metadata, "infer");
  expect_route("POST", "/v2/models/ready/infer", RouteId::infer, "ready");
}

TEST(Router, QueryStringsAndFragmentsAreIgnored) {
  expect_route("GET", "/v2/health/ready?verbose=1", RouteId::health_ready);
  expect_route("GET", "/metrics?name[]=x", RouteId::metrics);
  expect_route("POST", "/v2/models/demo/infer?x=/v2/models/other/ready", RouteId::infer, "demo");
  expect_route("GET", "/v2/models/demo#frag", RouteId::model_metadata, "demo");
  expect_route("GET", "/v2?", RouteId::server_metadata);
}

TEST(Router, WrongMethodIsMethodNotAllowedWithAllow) {
  expect_not_allowed("POST", "/v2", "GET");
  expect_not_allowed("POST", "/v2/health/live", "GET");
  expect_not_allowed("DELETE", "/v2/health/ready", "GET");
  expect_not_allowed("PUT", "/metrics", "GET");
  expect_not_allowed("POST", "/admin/workers", "GET");
  expect_not_allowed("POST", "/v2/models/demo", "GET");
  expect_not_allowed("POST", "/v2/models/demo/ready", "GET");
  expect_not_allowed("GET", "/v2/models/demo/infer", "POST");
  expect_not_allowed("GET", "/v2/models/demo/versions/3/generate", "POST");
  // Methods are case-sensitive (RFC 9110).
  expect_not_allowed("get", "/v2", "GET");
  // HEAD is not served.
  expect_not_allowed("HEAD", "/metrics", "GET");
}

TEST(Router, MethodNotAllowedKeepsTheModel) {
  const Route r = match_route("GET", "/v2/models/demo/infer");
  EXPECT_EQ(r.model, "demo");
}

TEST(Router, UnknownPathsAreNotFound) {
  for (const char* target : {
           "",
           "/v1",
           "/v3/models/demo",
           "/V2",
           "/v2/health",
           "/v2/health/dead",
           "/v2/health/live/now",
           "/v2/models",
           "/v2/models/demo/explain",
           "/v2/models/demo/infer/extra",
           "/v2/models/demo/versions",
           "/v2/models/demo/versions/1/x",
           "/v2/models/demo/versions/1/infer/x",
           "/v2/repository/index",
           "/metrics/x",
           "/admin",
           "/admin/workers/1",
           "/admin/other",
           "/admin/events/1",
           "/status/x",
           "/favicon.ico",
           "?a=b",
       }) {
    const Route r = match_route("GET", target);
    EXPECT_EQ(r.id, RouteId::not_found) << target << " -> " << r.label();
    EXPECT_EQ(r.allow, "") << target;
  }
  // An unknown path is not_found whatever the method.
  EXPECT_EQ(match_route("POST", "/nope").id, RouteId::not_found);
  EXPECT_EQ(match_route("POST", "/v2/models/demo/explain").id, RouteId::not_found);
}

TEST(Router, TrailingAndRepeatedSlashesAreIgnored) {
  // Empty path segments are skipped, so these match as if the slashes were not there.
  expect_route("GET", "/v2/", RouteId::server_metadata);
  expect_route("GET", "/metrics/", RouteId::metrics);
  expect_route("GET", "/v2/health/live/", RouteId::health_live);
  expect_route("POST", "/v2/models/demo/infer/", RouteId::infer, "demo");
  expect_route("GET", "//v2//models//demo", RouteId::model_metadata, "demo");
  expect_route("GET", "v2/health/ready", RouteId::health_ready);
}

TEST(Router, LabelValues) {
  const std::pair<RouteId, const char*> labels[] = {
      {RouteId::server_metadata, "server_metadata"},
      {RouteId::health_live, "health_live"},
      {RouteId::health_ready, "health_ready"},
      {RouteId::model_metadata, "model_metadata"},
      {RouteId::model_config, "model_config"},
      {RouteId::model_ready, "model_ready"},
      {RouteId::model_stats, "model_stats"},
      {RouteId::infer, "infer"},
      {RouteId::generate, "generate"},
      {RouteId::metrics, "metrics"},
      {RouteId::admin_workers, "admin_workers"},
      {RouteId::admin_reload, "admin_reload"},
      {RouteId::admin_events, "admin_events"},
      {RouteId::status_page, "status_page"},
      {RouteId::method_not_allowed, "method_not_allowed"},
      {RouteId::not_found, "not_found"},
  };
  for (const auto& [id, label] : labels) {
    Route r;
    r.id = id;
    EXPECT_EQ(r.label(), label);
  }
  EXPECT_EQ(Route{}.id, RouteId::not_found);
  // Labels do not depend on the model, so metrics stay bounded.
  EXPECT_EQ(match_route("POST", "/v2/models/a/infer").label(),
            match_route("POST", "/v2/models/b/infer").label());
}

TEST(Router, StatusPage) {
  expect_route("GET", "/", RouteId::status_page);
  expect_route("GET", "/?token=x", RouteId::status_page);
  expect_route("GET", "/status", RouteId::status_page);
  expect_route("GET", "/status/", RouteId::status_page);
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH"}) {
    expect_not_allowed(method, "/", "GET");
    expect_not_allowed(method, "/status", "GET");
  }
}

TEST(Router, AdminEvents) {
  expect_route("GET", "/admin/events", RouteId::admin_events);
  expect_route("GET", "/admin/events?x=1", RouteId::admin_events);
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH"}) {
    expect_not_allowed(method, "/admin/events", "GET");
  }
}

TEST(Router, AdminWorkers) {
  expect_route("GET", "/admin/workers", RouteId::admin_workers);
  expect_route("GET", "/admin/workers?verbose=1", RouteId::admin_workers);
  expect_route("GET", "/admin/workers/", RouteId::admin_workers);
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE", "HEAD", "get"}) {
    expect_not_allowed(method, "/admin/workers", "GET");
  }
}

TEST(Router, AdminPolicyTakesGetAndPatch) {
  expect_route("GET", "/admin/policy", RouteId::admin_policy);
  expect_route("PATCH", "/admin/policy", RouteId::admin_policy);
  expect_route("GET", "/admin/policy?format=json", RouteId::admin_policy);
  expect_route("PATCH", "/admin/policy/", RouteId::admin_policy);
  expect_route("PATCH", "//admin//policy", RouteId::admin_policy);
}

TEST(Router, AdminPolicyOtherMethodsAreNotAllowed) {
  for (const char* method : {"POST", "PUT", "DELETE", "HEAD", "OPTIONS", "get", "patch", ""}) {
    expect_not_allowed(method, "/admin/policy", "GET, PATCH");
    const Route r = match_route(method, "/admin/policy");
    EXPECT_EQ(r.model, "") << method;
    EXPECT_EQ(r.label(), "method_not_allowed") << method;
  }
  expect_not_allowed("POST", "/admin/policy?x=1", "GET, PATCH");
}

TEST(Router, AdminRecycle) {
  expect_route("POST", "/admin/recycle", RouteId::admin_recycle);
  expect_route("POST", "/admin/recycle?now=1", RouteId::admin_recycle);
  expect_route("POST", "/admin/reload", RouteId::admin_reload);
  expect_route("POST", "/admin/recycle?now=0", RouteId::admin_recycle);
  expect_route("POST", "/admin/recycle/?now=1", RouteId::admin_recycle);
  for (const char* method : {"GET", "PUT", "PATCH", "DELETE", "post"}) {
    expect_not_allowed(method, "/admin/recycle", "POST");
    expect_not_allowed(method, "/admin/recycle?now=1", "POST");
  }
}

TEST(Router, AdminFault) {
  expect_route("PUT", "/admin/fault", RouteId::admin_fault);
  expect_route("PUT", "/admin/fault?spec=crash", RouteId::admin_fault);
  expect_route("PUT", "/admin/fault/", RouteId::admin_fault);
  for (const char* method : {"GET", "POST", "PATCH", "DELETE", "put"}) {
    expect_not_allowed(method, "/admin/fault", "PUT");
  }
}

TEST(Router, UnknownAdminPathsAreNotFound) {
  for (const char* method : {"GET", "POST", "PUT", "PATCH"}) {
    for (const char* target : {
             "/admin",
             "/admin/",
             "/admin/policy/x",
             "/admin/recycle/now",
             "/admin/fault/crash",
             "/admin/Policy",
             "/Admin/policy",
             "/admin/recycler",
             "/admin/faults",
             "/v2/admin/policy",
             "/admin/v2",
             "/admin/metrics",
             "/policy",
             "/recycle",
         }) {
      const Route r = match_route(method, target);
      EXPECT_EQ(r.id, RouteId::not_found) << method << " " << target << " -> " << r.label();
      EXPECT_EQ(r.allow, "") << method << " " << target;
    }
  }
}

TEST(Router, AdminLabelValues) {
  const std::pair<RouteId, const char*> labels[] = {
      {RouteId::admin_workers, "admin_workers"}, {RouteId::admin_reload, "admin_reload"},
      {RouteId::admin_policy, "admin_policy"},   {RouteId::admin_recycle, "admin_recycle"},
      {RouteId::admin_fault, "admin_fault"},
  };
  for (const auto& [id, label] : labels) {
    Route r;
    r.id = id;
    EXPECT_EQ(r.label(), label);
  }
  EXPECT_EQ(match_route("GET", "/admin/workers").label(), "admin_workers");
  EXPECT_EQ(match_route("PATCH", "/admin/policy").label(), "admin_policy");
  EXPECT_EQ(match_route("POST", "/admin/recycle?now=1").label(), "admin_recycle");
  EXPECT_EQ(match_route("PUT", "/admin/fault").label(), "admin_fault");
  EXPECT_EQ(match_route("DELETE", "/admin/policy").label(), "method_not_allowed");
}

TEST(Router, EveryRouteHasADistinctLabel) {
  const RouteId ids[] = {
      RouteId::server_metadata,    RouteId::health_live,    RouteId::health_ready,
      RouteId::model_metadata,     RouteId::model_ready,    RouteId::infer,
      RouteId::generate,           RouteId::metrics,        RouteId::admin_workers,
      RouteId::admin_policy,       RouteId::admin_recycle,  RouteId::admin_fault,
      RouteId::method_not_allowed, RouteId::not_found,      RouteId::shm_status,
      RouteId::shm_register,       RouteId::shm_unregister, RouteId::cuda_shm,
      RouteId::model_config,
  };
  std::set<std::string_view> labels;
  for (RouteId id : ids) {
    Route r;
    r.id = id;
    EXPECT_TRUE(labels.insert(r.label()).second) << r.label();
  }
  EXPECT_EQ(labels.size(), std::size(ids));
}

// Triton's shared memory extension: the region's name in `item`; CUDA's routes all refused.
TEST(Router, SharedMemoryRoutes) {
  expect_route("GET", "/v2/systemsharedmemory/status", RouteId::shm_status);
  expect_route("POST", "/v2/systemsharedmemory/unregister", RouteId::shm_unregister);
  EXPECT_EQ(match_route("GET", "/v2/systemsharedmemory/region/in/status").item, "in");
  const auto reg = match_route("POST", "/v2/systemsharedmemory/region/in/register");
  EXPECT_EQ(reg.id, RouteId::shm_register);
  EXPECT_EQ(reg.item, "in");
  EXPECT_EQ(match_route("POST", "/v2/systemsharedmemory/region/in/unregister").item, "in");
  expect_route("POST", "/v2/systemsharedmemory/register", RouteId::not_found);
  expect_route("GET", "/v2/systemsharedmemory/region/in", RouteId::not_found);
  expect_route("POST", "/v2/systemsharedmemory/region/in/other", RouteId::not_found);
  expect_not_allowed("GET", "/v2/systemsharedmemory/region/in/register", "POST");
  expect_not_allowed("POST", "/v2/systemsharedmemory/status", "GET");
  expect_route("POST", "/v2/cudasharedmemory/region/g/register", RouteId::cuda_shm);
  expect_route("GET", "/v2/cudasharedmemory/status", RouteId::cuda_shm);
  expect_not_allowed("GET", "/v2/cudasharedmemory/unregister", "POST");
  // tritonclient quotes the name in the URL.
  EXPECT_EQ(match_route("POST", "/v2/systemsharedmemory/region/my%20in%2F1/register").item,
            "my in/1");
  expect_route("POST", "/v2/systemsharedmemory/region/bad%2/register", RouteId::not_found);
  expect_route("POST", "/v2/systemsharedmemory/region/bad%zz/register", RouteId::not_found);
}

}  // namespace
}  // namespace respawn
