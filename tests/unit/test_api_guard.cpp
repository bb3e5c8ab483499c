// Tests for run_guarded (supervisor/http/api.hpp): the last resort that keeps an exception in a
// handler from escaping to the I/O loop, where it would drop the connection unanswered.
#include <gtest/gtest.h>

#include <stdexcept>

#include "http/api.hpp"

namespace respawn {
namespace {

TEST(ApiGuard, AThrowingHandlerIsAnswered500WithJsonAndCounted) {
  Metrics metrics;
  int answers = 0;
  HttpResponse answer;
  run_guarded(
      metrics,
      [&](HttpResponse res) {
        ++answers;
        answer = std::move(res);
      },
      [] { throw nlohmann::json::type_error::create(316, "invalid UTF-8 byte", nullptr); });
  ASSERT_EQ(answers, 1);
  EXPECT_EQ(answer.result_int(), 500);
  const auto body = nlohmann::json::parse(answer.body());
  EXPECT_NE(body["error"].get<std::string>().find("invalid UTF-8"), std::string::npos);
  EXPECT_NE(metrics.render().find("respawn_handler_exceptions_total 1\n"), std::string::npos);
}

TEST(ApiGuard, AnythingThrownIsCaught) {
  Metrics metrics;
  int status = 0;
  run_guarded(
      metrics, [&](HttpResponse res) { status = res.result_int(); }, [] { throw 42; });
  EXPECT_EQ(status, 500);
}

TEST(ApiGuard, AHandlerThatDoesNotThrowIsLeftAlone) {
  Metrics metrics;
  int answers = 0;
  run_guarded(
      metrics, [&](HttpResponse) { ++answers; }, [] {});
  EXPECT_EQ(answers, 0);
  EXPECT_NE(metrics.render().find("respawn_handler_exceptions_total 0\n"), std::string::npos);
}

}  // namespace
}  // namespace respawn
