// Tests for the worker's environment (supervisor/lifecycle/worker_process.hpp child_environment):
// what posix_spawn hands the worker, built without touching the supervisor's own environment.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "lifecycle/worker_process.hpp"

namespace respawn {
namespace {

TEST(ChildEnvironment, KeepsTheBaseAndAppendsTheOverrides) {
  char a[] = "PATH=/usr/bin";
  char b[] = "HOME=/root";
  char* base[] = {a, b, nullptr};
  const auto env = child_environment(base, {{"OMP_WAIT_POLICY", "PASSIVE"}});
  EXPECT_EQ(env,
            (std::vector<std::string>{"PATH=/usr/bin", "HOME=/root", "OMP_WAIT_POLICY=PASSIVE"}));
}

TEST(ChildEnvironment, AnOverrideReplacesTheVariableOfTheSameNameOnly) {
  char a[] = "PYTORCH_CUDA_ALLOC_CONF=old";
  char b[] = "PYTORCH_CUDA_ALLOC_CONF_X=kept";
  char c[] = "EMPTY=";
  char* base[] = {a, b, c, nullptr};
  const auto env =
      child_environment(base, {{"PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"}});
  EXPECT_EQ(env, (std::vector<std::string>{"PYTORCH_CUDA_ALLOC_CONF_X=kept", "EMPTY=",
                                           "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"}));
}

TEST(ChildEnvironment, NoBaseAndNoOverridesIsEmpty) {
  EXPECT_TRUE(child_environment(nullptr, {}).empty());
  char* none[] = {nullptr};
  EXPECT_TRUE(child_environment(none, {}).empty());
}

}  // namespace
}  // namespace respawn
