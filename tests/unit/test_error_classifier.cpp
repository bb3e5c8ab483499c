// Tests for the libtorch failure rules (worker/error_classifier.hpp).
#include "error_classifier.hpp"

#include <string>

#include <gtest/gtest.h>

namespace respawn::worker {
namespace {

TEST(ErrorClassifier, OutOfMemoryFamilyIsOomAndHealthy) {
  const WorkerError e = classify_failure(ExceptionFamily::out_of_memory, "std::bad_alloc");
  EXPECT_EQ(e.kind, WorkerErrorKind::oom);
  EXPECT_TRUE(e.healthy);
  EXPECT_EQ(e.message, "std::bad_alloc");
}

TEST(ErrorClassifier, CudaOutOfMemoryMessageIsOomWhateverTheFamily) {
  const std::string msg =
      "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.15 GiB total capacity)";
  for (auto family :
       {ExceptionFamily::torch_other, ExceptionFamily::other, ExceptionFamily::input}) {
    const WorkerError e = classify_failure(family, msg);
    EXPECT_EQ(e.kind, WorkerErrorKind::oom);
    EXPECT_TRUE(e.healthy);
  }
  // Although it says "CUDA error", an OOM is recoverable.
  const WorkerError cuda =
      classify_failure(ExceptionFamily::torch_other, "CUDA error: out of memory");
  EXPECT_EQ(cuda.kind, WorkerErrorKind::oom);
  EXPECT_TRUE(cuda.healthy);
  const WorkerError cublas =
      classify_failure(ExceptionFamily::torch_other,
                       "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate");
  EXPECT_EQ(cublas.kind, WorkerErrorKind::oom);
  EXPECT_TRUE(cublas.healthy);
}

TEST(ErrorClassifier, StickyCudaErrorsAreUnhealthy) {
  for (const char* msg : {
           "CUDA error: an illegal memory access was encountered",
           "CUDA error: device-side assert triggered",
           "CUDA error: unspecified launch failure",
           "CUDA error: misaligned address",
           "CUDA error: an illegal instruction was encountered",
       }) {
    const WorkerError e = classify_failure(ExceptionFamily::torch_other, msg);
    EXPECT_EQ(e.kind, WorkerErrorKind::cuda_error) << msg;
    EXPECT_FALSE(e.healthy) << msg;
  }
}

TEST(ErrorClassifier, StickyCudaErrorsWinOverTheInputFamily) {
  const WorkerError e =
      classify_failure(ExceptionFamily::input, "device-side assert triggered: index out of bounds");
  EXPECT_EQ(e.kind, WorkerErrorKind::cuda_error);
  EXPECT_FALSE(e.healthy);
}

TEST(ErrorClassifier, UnknownCudaErrorsAreUnhealthy) {
  for (const char* msg : {"CUDA error: unknown error", "CUDNN_STATUS_EXECUTION_FAILED",
                          "CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm"}) {
    const WorkerError e = classify_failure(ExceptionFamily::torch_other, msg);
    EXPECT_EQ(e.kind, WorkerErrorKind::cuda_error) << msg;
    EXPECT_FALSE(e.healthy) << msg;
  }
}

TEST(ErrorClassifier, InputFamilyIsBadInputAndHealthy) {
  const WorkerError e = classify_failure(
      ExceptionFamily::input, "index 300 is out of bounds for dimension 0 with size 256");
  EXPECT_EQ(e.kind, WorkerErrorKind::bad_input);
  EXPECT_TRUE(e.healthy);
  EXPECT_EQ(e.message, "index 300 is out of bounds for dimension 0 with size 256");
}

TEST(ErrorClassifier, OtherFailuresAreInternalAndHealthy) {
  for (auto family : {ExceptionFamily::torch_other, ExceptionFamily::other}) {
    const WorkerError e = classify_failure(family, "expected scalar type Float but found Half");
    EXPECT_EQ(e.kind, WorkerErrorKind::internal);
    EXPECT_TRUE(e.healthy);
  }
  const WorkerError empty = classify_failure(ExceptionFamily::other, "");
  EXPECT_EQ(empty.kind, WorkerErrorKind::internal);
  EXPECT_EQ(empty.message, "");
}

TEST(ErrorClassifier, MessageKeepsOnlyTheFirstLine) {
  const WorkerError e = classify_failure(
      ExceptionFamily::torch_other,
      "The size of tensor a (3) must match the size of tensor b (4)\n"
      "Exception raised from infer_size_impl at ../aten/src/ATen/ExpandUtils.cpp:31\n"
      "frame #0: c10::Error::Error(...) + 0x8d\n");
  EXPECT_EQ(e.message, "The size of tensor a (3) must match the size of tensor b (4)");
  EXPECT_EQ(e.kind, WorkerErrorKind::internal);
}

TEST(ErrorClassifier, RulesLookPastTheFirstLine) {
  // The kind comes from the whole message even though only the first line is kept.
  const WorkerError e = classify_failure(ExceptionFamily::torch_other,
                                         "The following operation failed in the TorchScript "
                                         "interpreter.\nRuntimeError: CUDA out of memory.");
  EXPECT_EQ(e.kind, WorkerErrorKind::oom);
  EXPECT_EQ(e.message, "The following operation failed in the TorchScript interpreter.");
}

}  // namespace
}  // namespace respawn::worker
