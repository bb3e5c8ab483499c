// Tests for the libtorch failure rules (worker/error_classifier.hpp).
#include "error_classifier.hpp"

#include <string>
#include <vector>

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
    for (const char* msg : {
             "forward must return a tensor or a tuple/list of tensors",
             "\"addmm_impl_cpu_\" not implemented for 'Half'",
             "isTensor() INTERNAL ASSERT FAILED at \"../aten/src/ATen/core/ivalue_inl.h\":133, "
             "please report a bug to PyTorch. Expected Tensor but got Int",
         }) {
      const WorkerError e = classify_failure(family, msg);
      EXPECT_EQ(e.kind, WorkerErrorKind::internal) << msg;
      EXPECT_TRUE(e.healthy) << msg;
    }
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
  EXPECT_EQ(e.kind, WorkerErrorKind::bad_input);  // the request's tensors do not fit
}

TEST(ErrorClassifier, RulesLookPastTheFirstLine) {
  // The kind comes from the whole message even though only the first line is kept.
  const WorkerError e = classify_failure(ExceptionFamily::torch_other,
                                         "The following operation failed in the TorchScript "
                                         "interpreter.\nRuntimeError: CUDA out of memory.");
  EXPECT_EQ(e.kind, WorkerErrorKind::oom);
  EXPECT_EQ(e.message, "CUDA out of memory.");  // the failure, not TorchScript's header
}

// Real messages from failures inside a TorchScript forward, verbatim: Debian's libtorch 1.13
// (python3-torch: torch.jit.script, and torch.jit.save/load for the "serialized code" form the
// worker sees). A C++ failure arrives as a std::runtime_error (a torch::jit::JITException for
// an exception the model raises itself), whatever c10 error class the operator threw.

// An out-of-range index into an nn.Embedding of a saved and loaded model.
constexpr const char* kLoadedEmbeddingOutOfRange =
    R"msg(The following operation failed in the TorchScript interpreter.
Traceback of TorchScript, serialized code (most recent call last):
  File "code/__torch__.py", line 11, in forward
    weights: Tensor) -> Tensor:
    emb = self.emb
    _0 = torch.mul((emb).forward(ids, ), torch.unsqueeze(weights, -1))
                    ~~~~~~~~~~~~ <--- HERE
    return torch.sum(_0, [1])
  File "code/__torch__/torch/nn/modules/sparse.py", line 18, in forward
    _0 = __torch__.torch.nn.functional.embedding
    weight = self.weight
    _1 = _0(input, weight, None, None, 2., False, False, )
         ~~ <--- HERE
    return _1
  File "code/__torch__/torch/nn/functional.py", line 37, in embedding
  else:
    input0 = input
  _3 = torch.embedding(weight, input0, padding_idx0, scale_grad_by_freq, sparse)
       ~~~~~~~~~~~~~~~ <--- HERE
  return _3

Traceback of TorchScript, original code (most recent call last):
  File "/tmp/msgs/gen2.py", line 7, in forward
    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return (self.emb(ids) * weights.unsqueeze(-1)).sum(1)
                ~~~~~~~~ <--- HERE
  File "/usr/lib/python3/dist-packages/torch/nn/modules/sparse.py", line 160, in forward
    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(
               ~~~~~~~~~~~ <--- HERE
            input, self.weight, self.padding_idx, self.max_norm,
            self.norm_type, self.scale_grad_by_freq, self.sparse)
  File "/usr/lib/python3/dist-packages/torch/nn/functional.py", line 2210, in embedding
        # remove once script supports set_grad_enabled
        _no_grad_embedding_renorm_(weight, input, max_norm, norm_type)
    return torch.embedding(weight, input, padding_idx, scale_grad_by_freq, sparse)
           ~~~~~~~~~~~~~~~ <--- HERE
RuntimeError: index out of range in self
)msg";

TEST(ErrorClassifier, TorchScriptIndexOutOfRangeIsBadInputWithItsLine) {
  // Before: internal (500), "The following operation failed in the TorchScript interpreter."
  for (auto family : {ExceptionFamily::other, ExceptionFamily::torch_other}) {
    const WorkerError e = classify_failure(family, kLoadedEmbeddingOutOfRange);
    EXPECT_EQ(e.kind, WorkerErrorKind::bad_input);
    EXPECT_TRUE(e.healthy);
    EXPECT_EQ(e.message, "index out of range in self");
  }
}

TEST(ErrorClassifier, TorchScriptShapeMismatchOfALoadedModelIsBadInput) {
  const WorkerError e =
      classify_failure(ExceptionFamily::other,
                       R"msg(The following operation failed in the TorchScript interpreter.
Traceback of TorchScript, serialized code (most recent call last):
  File "code/__torch__.py", line 11, in forward
    weights: Tensor) -> Tensor:
    emb = self.emb
    _0 = torch.mul((emb).forward(ids, ), torch.unsqueeze(weights, -1))
         ~~~~~~~~~ <--- HERE
    return torch.sum(_0, [1])

Traceback of TorchScript, original code (most recent call last):
  File "/tmp/msgs/gen2.py", line 7, in forward
    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return (self.emb(ids) * weights.unsqueeze(-1)).sum(1)
                ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~ <--- HERE
RuntimeError: The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1
)msg");
  EXPECT_EQ(e.kind, WorkerErrorKind::bad_input);
  EXPECT_TRUE(e.healthy);
  EXPECT_EQ(e.message,
            "The size of tensor a (3) must match the size of tensor b (4) at non-singleton "
            "dimension 1");
}

TEST(ErrorClassifier, TorchScriptWithCppStacktracesKeepsTheErrorLine) {
  // TORCH_SHOW_CPP_STACKTRACES=1 appends the C++ message and backtrace after the error line.
  const std::string msg = std::string(kLoadedEmbeddingOutOfRange) +
                          R"msg(index out of range in self
Exception raised from operator() at ./aten/src/ATen/native/TensorAdvancedIndexing.cpp:1189 (most recent call first):
frame #0: c10::Error::Error(c10::SourceLocation, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >) + 0x9e (0x7f340c5c39ae in /lib/x86_64-linux-gnu/libc10.so.1.13)
frame #1: <unknown function> + 0x899836 (0x7f3405a99836 in /lib/x86_64-linux-gnu/libtorch_cpu.so.1.13)
frame #2: at::native::index_select_out_cpu_(at::Tensor const&, long, at::Tensor const&, at::Tensor&) + 0x1c3a (0x7f340656c00a in /lib/x86_64-linux-gnu/libtorch_cpu.so.1.13)
)msg";
  const WorkerError e = classify_failure(ExceptionFamily::other, msg);
  EXPECT_EQ(e.kind, WorkerErrorKind::bad_input);
  EXPECT_EQ(e.message, "index out of range in self");
}

// The traceback of one scripted (not saved) module: its frames, then the error line.
std::string scripted(const std::string& frames, const std::string& error) {
  return "The following operation failed in the TorchScript interpreter.\n"
         "Traceback of TorchScript (most recent call last):\n" +
         frames + error + "\n";
}

constexpr const char* kLinearFrames = R"msg(  File "/tmp/msgs/gen.py", line 17, in forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)
               ~~~~~~~ <--- HERE
  File "/usr/lib/python3/dist-packages/torch/nn/modules/linear.py", line 114, in forward
    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)
               ~~~~~~~~ <--- HERE
)msg";

constexpr const char* kEmbeddingFrames = R"msg(  File "/tmp/msgs/gen.py", line 10, in forward
    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        e = self.emb(ids)
            ~~~~~~~~ <--- HERE
        return self.fc((e * weights.unsqueeze(-1)).sum(1))
  File "/usr/lib/python3/dist-packages/torch/nn/modules/sparse.py", line 160, in forward
    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(
               ~~~~~~~~~~~ <--- HERE
            input, self.weight, self.padding_idx, self.max_norm,
            self.norm_type, self.scale_grad_by_freq, self.sparse)
  File "/usr/lib/python3/dist-packages/torch/nn/functional.py", line 2210, in embedding
        # remove once script supports set_grad_enabled
        _no_grad_embedding_renorm_(weight, input, max_norm, norm_type)
    return torch.embedding(weight, input, padding_idx, scale_grad_by_freq, sparse)
           ~~~~~~~~~~~~~~~ <--- HERE
)msg";

// One frame at `code`, as a scripted module's own forward shows it.
std::string frame(const std::string& code) {
  return "  File \"/tmp/msgs/gen.py\", line 27, in forward\n"
         "    def forward(self, x: torch.Tensor, i: torch.Tensor) -> torch.Tensor:\n"
         "        return " +
         code + "\n               ~~~~~~~~ <--- HERE\n";
}

TEST(ErrorClassifier, TorchScriptIndexShapeAndDtypeErrorsAreBadInput) {
  struct Case {
    std::string frames, error, line;
  };
  const std::vector<Case> cases = {
      // index
      {frame("x.gather(1, i)"),
       "RuntimeError: index 5 is out of bounds for dimension 1 with size 2",
       "index 5 is out of bounds for dimension 1 with size 2"},
      {frame("x[5]"),
       "RuntimeError: select(): index 5 out of range for tensor of size [2, 2] at dimension 0",
       "select(): index 5 out of range for tensor of size [2, 2] at dimension 0"},
      // shape
      {frame("int(x)"), "RuntimeError: a Tensor with 2 elements cannot be converted to Scalar",
       "a Tensor with 2 elements cannot be converted to Scalar"},
      {kLinearFrames, "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x5 and 4x2)",
       "mat1 and mat2 shapes cannot be multiplied (2x5 and 4x2)"},
      {frame("torch.cat([x, y], 1)"),
       "RuntimeError: Sizes of tensors must match except in dimension 1. Expected size 2 but got "
       "size 3 for tensor number 1 in the list.",
       "Sizes of tensors must match except in dimension 1. Expected size 2 but got size 3 for "
       "tensor number 1 in the list."},
      {frame("x.view(-1, 3)"), "RuntimeError: shape '[-1, 3]' is invalid for input of size 4",
       "shape '[-1, 3]' is invalid for input of size 4"},
      {frame("torch.bmm(x, y)"),
       "RuntimeError: Expected size for first two dimensions of batch2 tensor to be: [2, 3] but "
       "got: [2, 4].",
       "Expected size for first two dimensions of batch2 tensor to be: [2, 3] but got: [2, 4]."},
      {frame("self.c(x)"),
       "RuntimeError: Given groups=1, weight of size [4, 3, 3, 3], expected input[1, 2, 5, 5] to "
       "have 3 channels, but got 2 channels instead",
       "Given groups=1, weight of size [4, 3, 3, 3], expected input[1, 2, 5, 5] to have 3 "
       "channels, but got 2 channels instead"},
      {frame("a[i] = v"),
       "RuntimeError: shape mismatch: value tensor of shape [3] cannot be broadcast to indexing "
       "result of shape [2]",
       "shape mismatch: value tensor of shape [3] cannot be broadcast to indexing result of shape "
       "[2]"},
      {frame("self.l(a)[0]"),  // nn.LSTM raises it from its own TorchScript code
       "builtins.RuntimeError: input.size(-1) must be equal to input_size. Expected 4, got 5",
       "input.size(-1) must be equal to input_size. Expected 4, got 5"},
      // dtype
      {kEmbeddingFrames,
       "RuntimeError: Expected tensor for argument #1 'indices' to have one of the following "
       "scalar types: Long, Int; but got torch.FloatTensor instead (while checking arguments for "
       "embedding)",
       "Expected tensor for argument #1 'indices' to have one of the following scalar types: "
       "Long, Int; but got torch.FloatTensor instead (while checking arguments for embedding)"},
      {frame("torch.nn.functional.cross_entropy(x, y)"),
       "RuntimeError: expected scalar type Long but found Float",
       "expected scalar type Long but found Float"},
      {kLinearFrames, "RuntimeError: mat1 and mat2 must have the same dtype",
       "mat1 and mat2 must have the same dtype"},
      {frame("x.gather(1, i)"), "RuntimeError: gather(): Expected dtype int64 for index",
       "gather(): Expected dtype int64 for index"},
  };
  for (const auto& c : cases) {
    const WorkerError e = classify_failure(ExceptionFamily::other, scripted(c.frames, c.error));
    EXPECT_EQ(e.kind, WorkerErrorKind::bad_input) << c.error;
    EXPECT_TRUE(e.healthy) << c.error;
    EXPECT_EQ(e.message, c.line);
  }
}

TEST(ErrorClassifier, ExceptionsTheModelRaisesForItsInputAreBadInput) {
  // `raise ValueError("too many rows")` / `raise IndexError(...)` in forward: a JITException.
  const std::string source = R"msg(  File "/tmp/msgs/gen.py", line 21, in forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(0) > 2:
            raise ValueError("too many rows")
            ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~ <--- HERE
        if x.size(0) > 1:
            raise IndexError("custom index")
)msg";
  const WorkerError value = classify_failure(
      ExceptionFamily::other, scripted(source, "builtins.ValueError: too many rows"));
  EXPECT_EQ(value.kind, WorkerErrorKind::bad_input);
  EXPECT_EQ(value.message, "ValueError: too many rows");
  for (const char* error : {"builtins.IndexError: custom index", "builtins.TypeError: not ids"}) {
    EXPECT_EQ(classify_failure(ExceptionFamily::other, scripted(source, error)).kind,
              WorkerErrorKind::bad_input)
        << error;
  }
}

TEST(ErrorClassifier, ForwardArgumentErrorsAreBadInput) {
  // A model without an input spec called with the wrong number of tensors (a c10::Error).
  for (const char* msg : {
           "forward() expected at most 3 argument(s) but received 4 argument(s). Declaration: "
           "forward(__torch__.Two self, Tensor a, Tensor b) -> Tensor",
           "forward() is missing value for argument 'b'. Declaration: forward(__torch__.Two self, "
           "Tensor a, Tensor b) -> Tensor",
       }) {
    const WorkerError e = classify_failure(ExceptionFamily::torch_other, msg);
    EXPECT_EQ(e.kind, WorkerErrorKind::bad_input) << msg;
  }
}

TEST(ErrorClassifier, DirectTorchInputErrorsAreBadInputWithoutTheBacktrace) {
  // The same operator failing outside TorchScript: a c10::Error whose what() has a backtrace.
  const WorkerError e =
      classify_failure(ExceptionFamily::torch_other,
                       "Sizes of tensors must match except in dimension 0. Expected size 3 but "
                       "got size 2 for tensor number 1 in the list.\n"
                       "Exception raised from check_cat_shape_except_dim at "
                       "./aten/src/ATen/native/TensorShape.cpp:190 (most recent call first):\n"
                       "frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x9e\n");
  EXPECT_EQ(e.kind, WorkerErrorKind::bad_input);
  EXPECT_EQ(e.message,
            "Sizes of tensors must match except in dimension 0. Expected size 3 but got size 2 "
            "for tensor number 1 in the list.");
}

TEST(ErrorClassifier, TorchScriptInternalFaultsStayInternal) {
  struct Case {
    std::string error, line;
  };
  const std::vector<Case> cases = {
      // A model's own assert: an invariant of the model, not a statement about the input.
      {"RuntimeError: AssertionError: batch of one only", "AssertionError: batch of one only"},
      // A model that mixes devices (PyTorch 2.x wording, then checkSameGPU's).
      {"RuntimeError: Expected all tensors to be on the same device, but found at least two "
       "devices, cuda:0 and cpu! (when checking argument for argument mat1 in method "
       "wrapper_CUDA_addmm)",
       "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and "
       "cpu! (when checking argument for argument mat1 in method wrapper_CUDA_addmm)"},
      {"RuntimeError: Expected tensor for argument #1 'indices' to have the same device as tensor "
       "for argument #2 'weight'; but device 0 does not equal 1 (while checking arguments for "
       "embedding)",
       "Expected tensor for argument #1 'indices' to have the same device as tensor for argument "
       "#2 'weight'; but device 0 does not equal 1 (while checking arguments for embedding)"},
  };
  for (const auto& c : cases) {
    const WorkerError e =
        classify_failure(ExceptionFamily::other, scripted(kLinearFrames, c.error));
    EXPECT_EQ(e.kind, WorkerErrorKind::internal) << c.error;
    EXPECT_TRUE(e.healthy);
    EXPECT_EQ(e.message, c.line);
  }
}

TEST(ErrorClassifier, TheQuotedSourceDoesNotDecideTheKind) {
  // The traceback quotes model code; words in it ("out of memory", "CUDA error", "raise
  // ValueError") say nothing about the failure.
  const std::string frames = R"msg(  File "/tmp/model.py", line 12, in forward
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids past the table would be a CUDA error: device-side assert triggered, or out of memory
        if ids.size(1) > 128:
            raise ValueError("too long")
        return self.emb(ids)
               ~~~~~~~~ <--- HERE
)msg";
  const WorkerError e = classify_failure(
      ExceptionFamily::other, scripted(frames, "RuntimeError: index out of range in self"));
  EXPECT_EQ(e.kind, WorkerErrorKind::bad_input);
  EXPECT_TRUE(e.healthy);
  EXPECT_EQ(e.message, "index out of range in self");
}

TEST(ErrorClassifier, TorchScriptCudaAndOomFailuresKeepTheirPrecedence) {
  // A sticky CUDA error reported by an indexing kernel: the worker must still go.
  const WorkerError sticky = classify_failure(
      ExceptionFamily::other,
      scripted(kEmbeddingFrames, std::string("RuntimeError: CUDA error: device-side assert "
                                             "triggered") +
                                     kCudaSuffix));
  EXPECT_EQ(sticky.kind, WorkerErrorKind::cuda_error);
  EXPECT_FALSE(sticky.healthy);
  EXPECT_EQ(sticky.message, "CUDA error: device-side assert triggered");
  // Out of memory inside forward stays an OOM (503), not bad input.
  const WorkerError oom = classify_failure(
      ExceptionFamily::other,
      scripted(kLinearFrames,
               "RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.15 GiB "
               "total capacity; 1.00 GiB already allocated)"));
  EXPECT_EQ(oom.kind, WorkerErrorKind::oom);
  EXPECT_TRUE(oom.healthy);
  // A launch argument error stays internal even though the request's shape caused it.
  const WorkerError launch = classify_failure(
      ExceptionFamily::other,
      scripted(
          kLinearFrames,
          std::string("RuntimeError: CUDA error: invalid configuration argument") + kCudaSuffix));
  EXPECT_EQ(launch.kind, WorkerErrorKind::internal);
  EXPECT_TRUE(launch.healthy);
}

TEST(ErrorClassifier, NestedTorchScriptFailuresUseTheInnermostLine) {
  const std::string inner = scripted(frame("x[5]"),
                                     "RuntimeError: select(): index 5 out of range for tensor "
                                     "of size [2, 2] at dimension 0");
  const WorkerError e =
      classify_failure(ExceptionFamily::other, scripted(kLinearFrames, "RuntimeError: " + inner));
  EXPECT_EQ(e.kind, WorkerErrorKind::bad_input);
  EXPECT_EQ(e.message, "select(): index 5 out of range for tensor of size [2, 2] at dimension 0");
}

TEST(ErrorClassifier, ATorchScriptHeaderWithoutAnErrorLineKeepsTheHeader) {
  const WorkerError e = classify_failure(
      ExceptionFamily::other, "The following operation failed in the TorchScript interpreter.\n");
  EXPECT_EQ(e.kind, WorkerErrorKind::internal);
  EXPECT_EQ(e.message, "The following operation failed in the TorchScript interpreter.");
}

// libtorch 2.8 on throws c10::AcceleratorError with the cudaError_t; the code decides, not the
// text (which differs between CUDA versions and may be wrapped by TorchScript).
TEST(ErrorClassifier, CudaErrorCodeDecidesWhateverTheText) {
  // Sticky codes: the context is lost, whatever the message claims.
  for (const int code :
       {cuda_code::illegal_address, cuda_code::launch_failure, cuda_code::device_assert,
        214 /* ECC uncorrectable */, 999 /* unknown */}) {
    const WorkerError e = classify_failure(ExceptionFamily::torch_other,
                                           "CUDA error: index out of range in self", code);
    EXPECT_EQ(e.kind, WorkerErrorKind::cuda_error) << code;
    EXPECT_FALSE(e.healthy) << code;
    EXPECT_EQ(e.message, "CUDA error: index out of range in self") << code;
  }
  // cudaErrorMemoryAllocation is an out-of-memory even with text that would look sticky.
  const WorkerError oom =
      classify_failure(ExceptionFamily::torch_other, "CUDA error: unspecified launch failure",
                       cuda_code::memory_allocation);
  EXPECT_EQ(oom.kind, WorkerErrorKind::oom);
  EXPECT_TRUE(oom.healthy);
  // A launch refused before it ran leaves the context as it was.
  for (const int code : {cuda_code::invalid_value, cuda_code::invalid_configuration,
                         cuda_code::launch_out_of_resources}) {
    const WorkerError e = classify_failure(
        ExceptionFamily::torch_other, "CUDA error: an illegal memory access was encountered", code);
    EXPECT_EQ(e.kind, WorkerErrorKind::internal) << code;
    EXPECT_TRUE(e.healthy) << code;
  }
}

TEST(ErrorClassifier, CudaErrorCodeOfATorchScriptFailureKeepsItsUsefulLine) {
  const std::string msg =
      "The following operation failed in the TorchScript interpreter.\n"
      "Traceback of TorchScript (most recent call last):\n"
      "  File \"code/__torch__.py\", line 8, in forward\n"
      "    return torch.add(x, 1)\n"
      "           ~~~~~~~~~ <--- HERE\n"
      "RuntimeError: CUDA error: an illegal memory access was encountered\n";
  const WorkerError e =
      classify_failure(ExceptionFamily::torch_other, msg, cuda_code::illegal_address);
  EXPECT_EQ(e.kind, WorkerErrorKind::cuda_error);
  EXPECT_FALSE(e.healthy);
  EXPECT_EQ(e.message, "CUDA error: an illegal memory access was encountered");
}

// Without a code (libtorch before 2.8, or a failure that carries none) the text rules apply.
TEST(ErrorClassifier, WithoutACudaErrorCodeTheTextDecides) {
  const WorkerError e =
      classify_failure(ExceptionFamily::torch_other,
                       "CUDA error: an illegal memory access was encountered", std::nullopt);
  EXPECT_EQ(e.kind, WorkerErrorKind::cuda_error);
  const WorkerError input =
      classify_failure(ExceptionFamily::torch_other, "index out of range in self", std::nullopt);
  EXPECT_EQ(input.kind, WorkerErrorKind::bad_input);
}

}  // namespace
}  // namespace respawn::worker
