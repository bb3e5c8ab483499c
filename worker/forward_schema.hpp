#pragma once
// What a TorchScript model's forward() declares, for a model whose respawn.json does not
// declare its inputs or outputs: the metadata the ready frame reports (so GET /v2/models/{m}
// lists the real names), the order a request's inputs are passed in, and the arguments that are
// not tensors (int, float, bool, str, List[str]). Internal to the worker; includes libtorch.
// Pure functions; thread-safe. An AOTInductor package has no schema: none of this applies.
//
// Metadata rule (KServe clients need a valid datatype string, and TorchScript types say nothing
// about a tensor's dtype or rank):
//   Tensor (and anything else forward is given a tensor for) -> "FP32", shape [-1]: a guess,
//       since the schema does not say; without a spec the worker takes any datatype and rank;
//   List[str] -> "BYTES" [-1];  str -> "BYTES" [1];
//   int -> "INT64" [1];  float -> "FP64" [1];  bool -> "BOOL" [1]  (Optional[T] as T).
// Outputs from the return type: a Tensor -> output__0 ("FP32" [-1]); a List[str] -> output__0
// ("BYTES" [-1]); a tuple -> output__0..N-1, up to its first element that is neither (what the
// worker returns, torch_types.hpp); anything else (List[Tensor]: its length is unknown) -> [].
#include <ATen/core/function_schema.h>
#include <ATen/core/ivalue.h>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace respawn::worker {

// How forward takes one argument.
enum class ArgKind { tensor, string_list, string, int_scalar, float_scalar, bool_scalar };

struct ForwardArg {
  std::string name;
  ArgKind kind = ArgKind::tensor;
};

struct ForwardSchema {
  std::vector<ForwardArg> args;                      // forward's arguments after `self`
  nlohmann::json inputs = nlohmann::json::array();   // KServe metadata entries, in args' order
  nlohmann::json outputs = nlohmann::json::array();  // {name, datatype, shape}
};

ForwardSchema read_forward_schema(const c10::FunctionSchema& schema);

// The positions, in args' order, of `names` (a request's input names) when they are exactly
// forward's argument names (each once, in any order); nullopt otherwise.
std::optional<std::vector<std::size_t>> order_by_schema(const std::vector<ForwardArg>& args,
                                                        const std::vector<std::string>& names);

// Makes `value` (a tensor, or a List[str] from a BYTES input) what an argument of `kind` takes:
// a one-element tensor becomes an int, float or bool; a one-element List[str] a str. Anything
// else is left for forward to accept or refuse. The error names the input when an int, float,
// bool or str argument is given more than one element.
std::optional<std::string> adapt_argument(const ForwardArg& arg, c10::IValue& value);

}  // namespace respawn::worker
