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

// What PyTorch 2.x's C10_CUDA_CHECK appends to every CUDA error (c10/cuda/CUDAException.cpp).
constexpr const char* kCudaSuffix =
    "\nCUDA kernel errors might be asynchronously reported at some other API call, so the "
    "stacktrace below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\n"
    "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n";

TEST(ErrorClassifier, CachingAllocatorOutOfMemoryMessagesAreOom) {
  for (const char* msg : {
           // PyTorch 1.13
           "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 5.80 GiB total capacity; "
           "4.50 GiB already allocated; 10.19 MiB free; 4.60 GiB reserved in total by PyTorch) "
           "If reserved memory is >> allocated memory try setting max_split_size_mb to avoid "
           "fragmentation.  See documentation for Memory Management and PYTORCH_CUDA_ALLOC_CONF",
           // PyTorch 2.x
           "CUDA out of memory. Tried to allocate 22.00 MiB. GPU 0 has a total capacity of 23.65 "
           "GiB of which 11.06 MiB is free. Including non-PyTorch memory, this process has 23.60 "
           "GiB memory in use. Of the allocated memory 22.90 GiB is allocated by PyTorch, and "
           "194.87 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory "
           "is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid "
           "fragmentation.  See documentation for Memory Management  "
           "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)",
       }) {
    const WorkerError e = classify_failure(ExceptionFamily::out_of_memory, msg);
    EXPECT_EQ(e.kind, WorkerErrorKind::oom) << msg;
    EXPECT_TRUE(e.healthy) << msg;
    // Through TorchScript the exception arrives as a plain runtime error.
    const WorkerError wrapped = classify_failure(
        ExceptionFamily::other,
        std::string("The following operation failed in the TorchScript interpreter.\n"
                    "Traceback of TorchScript (most recent call last):\n"
                    "RuntimeError: ") +
            msg + "\n");
    EXPECT_EQ(wrapped.kind, WorkerErrorKind::oom) << msg;
    EXPECT_TRUE(wrapped.healthy) << msg;
  }
}

TEST(ErrorClassifier, RuntimeAndLibraryAllocationFailuresAreOom) {
  for (const std::string& msg : {
           std::string("CUDA error: out of memory") + kCudaSuffix,
           std::string(
               "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
           std::string("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
           std::string("Unable to find a valid cuDNN algorithm to run convolution"),
           std::string("[enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: can't "
                       "allocate memory: you tried to allocate 1125899906842624 bytes. Error "
                       "code 12 (Cannot allocate memory)"),
       }) {
    const WorkerError e = classify_failure(ExceptionFamily::torch_other, msg);
    EXPECT_EQ(e.kind, WorkerErrorKind::oom) << msg;
    EXPECT_TRUE(e.healthy) << msg;
  }
}

TEST(ErrorClassifier, StickyCudaErrorsWithPyTorch2SuffixAreUnhealthy) {
  for (const char* what : {
           "CUDA error: an illegal memory access was encountered",
           "CUDA error: device-side assert triggered",
           "CUDA error: unspecified launch failure",
           "CUDA error: misaligned address",
           "CUDA error: an illegal instruction was encountered",
           "CUDA error: the launch timed out and was terminated",
           "CUDA error: uncorrectable ECC error encountered",
           "CUDA error: hardware stack error",
           "CUDA error: invalid program counter",
           "CUDA driver error: an illegal memory access was encountered",
       }) {
    const std::string msg = std::string(what) + kCudaSuffix;
    const WorkerError e = classify_failure(ExceptionFamily::torch_other, msg);
    EXPECT_EQ(e.kind, WorkerErrorKind::cuda_error) << msg;
    EXPECT_FALSE(e.healthy) << msg;
    EXPECT_EQ(e.message, what);  // the suffix and backtrace stay out of the client's message
  }
}

TEST(ErrorClassifier, LibraryExecutionFailuresAreUnhealthy) {
  for (const char* msg : {
           "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, "
           "opb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc)`",
           "cuDNN error: CUDNN_STATUS_EXECUTION_FAILED",
           "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR",
           "CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`",
           "cuFFT error: CUFFT_INTERNAL_ERROR",
       }) {
    const WorkerError e = classify_failure(ExceptionFamily::torch_other, msg);
    EXPECT_EQ(e.kind, WorkerErrorKind::cuda_error) << msg;
    EXPECT_FALSE(e.healthy) << msg;
  }
}

TEST(ErrorClassifier, StickyErrorsWinOverOutOfMemory) {
  // A poisoned context also fails its allocations; the worker must not stay.
  const WorkerError e =
      classify_failure(ExceptionFamily::out_of_memory,
                       std::string("CUDA error: an illegal memory access was encountered") +
                           kCudaSuffix + "while handling: CUDA out of memory");
  EXPECT_EQ(e.kind, WorkerErrorKind::cuda_error);
  EXPECT_FALSE(e.healthy);
}

TEST(ErrorClassifier, LaunchArgumentErrorsKeepTheWorker) {
  // Reported before anything ran; the context is untouched (not sticky).
  for (const std::string& msg : {
           std::string("CUDA error: invalid configuration argument") + kCudaSuffix,
           std::string("CUDA error: too many resources requested for launch") + kCudaSuffix,
           std::string("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you "
                       "passed in a non-contiguous input."),
           std::string("cuDNN error: CUDNN_STATUS_BAD_PARAM"),
           std::string(
               "CUDA error: CUBLAS_STATUS_NOT_SUPPORTED when calling `cublasGemmEx( "
               "handle, opa, opb, m, n, k, &falpha, a, CUDA_R_16F, lda, b, CUDA_R_16F, "
               "ldb, &fbeta, c, CUDA_R_16F, ldc, CUDA_R_32F, CUBLAS_GEMM_DEFAULT_TENSOR_OP)`"),
       }) {
    const WorkerError e = classify_failure(ExceptionFamily::torch_other, msg);
    EXPECT_EQ(e.kind, WorkerErrorKind::internal) << msg;
    EXPECT_TRUE(e.healthy) << msg;
  }
}

TEST(ErrorClassifier, TheDsaHintAloneIsNotADeviceSideAssert) {
  // "... to enable device-side assertions." ends every CUDA error; it must not make an unknown
  // error look like an assert, nor an OOM sticky.
  const WorkerError oom = classify_failure(ExceptionFamily::torch_other,
                                           std::string("CUDA error: out of memory") + kCudaSuffix);
  EXPECT_EQ(oom.kind, WorkerErrorKind::oom);
  EXPECT_TRUE(oom.healthy);
}

TEST(ErrorClassifier, UnknownCudaErrorsWithSuffixAreUnhealthy) {
  for (const char* what : {"CUDA error: unknown error",
                           "CUDA error: no kernel image is available for execution on the device",
                           "CUDA error: CUDA-capable device(s) is/are busy or unavailable"}) {
    const std::string msg = std::string(what) + kCudaSuffix;
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
