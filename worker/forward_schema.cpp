#include "forward_schema.hpp"

#include <ATen/core/jit_type.h>

#include <algorithm>

namespace respawn::worker {
namespace {

ArgKind kind_of(c10::TypePtr type) {
  if (type->kind() == c10::TypeKind::OptionalType) type = type->containedType(0);
  switch (type->kind()) {
    case c10::TypeKind::StringType:
      return ArgKind::string;
    case c10::TypeKind::IntType:
      return ArgKind::int_scalar;
    case c10::TypeKind::FloatType:
      return ArgKind::float_scalar;
    case c10::TypeKind::BoolType:
      return ArgKind::bool_scalar;
    case c10::TypeKind::ListType:
      if (type->containedType(0)->kind() == c10::TypeKind::StringType) return ArgKind::string_list;
      return ArgKind::tensor;
    default:
      return ArgKind::tensor;  // what the worker passes for anything else
  }
}

nlohmann::json entry(const std::string& name, ArgKind kind) {
  const auto io = [&](const char* datatype, std::int64_t dim) {
    return nlohmann::json{{"name", name}, {"datatype", datatype}, {"shape", {dim}}};
  };
  switch (kind) {
    case ArgKind::tensor:
      return io("FP32", -1);
    case ArgKind::string_list:
      return io("BYTES", -1);
    case ArgKind::string:
      return io("BYTES", 1);
    case ArgKind::int_scalar:
      return io("INT64", 1);
    case ArgKind::float_scalar:
      return io("FP64", 1);
    case ArgKind::bool_scalar:
      return io("BOOL", 1);
  }
  return io("FP32", -1);
}

// An output the worker can return: a tensor or a List[str].
std::optional<ArgKind> output_kind(const c10::TypePtr& type) {
  if (type->kind() == c10::TypeKind::TensorType) return ArgKind::tensor;
  if (type->kind() == c10::TypeKind::ListType &&
      type->containedType(0)->kind() == c10::TypeKind::StringType) {
    return ArgKind::string_list;
  }
  return std::nullopt;
}

nlohmann::json outputs_of(const c10::FunctionSchema& schema) {
  nlohmann::json outputs = nlohmann::json::array();
  if (schema.returns().size() != 1) return outputs;
  const auto& type = schema.returns()[0].type();
  std::vector<c10::TypePtr> elements = {type};
  if (type->kind() == c10::TypeKind::TupleType) elements = type->containedTypes().vec();
  for (const auto& t : elements) {
    const auto kind = output_kind(t);
    if (!kind) break;
    outputs.push_back(entry("output__" + std::to_string(outputs.size()), *kind));
  }
  return outputs;
}

}  // namespace

ForwardSchema read_forward_schema(const c10::FunctionSchema& schema) {
  ForwardSchema out;
  const auto& arguments = schema.arguments();
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    if (i == 0 && arguments[i].name() == "self") continue;
    ForwardArg arg{arguments[i].name(), kind_of(arguments[i].type())};
    out.inputs.push_back(entry(arg.name, arg.kind));
    out.args.push_back(std::move(arg));
  }
  out.outputs = outputs_of(schema);
  return out;
}

std::optional<std::vector<std::size_t>> order_by_schema(const std::vector<ForwardArg>& args,
                                                        const std::vector<std::string>& names) {
  if (args.empty() || names.size() != args.size()) return std::nullopt;
  std::vector<std::size_t> positions;  // positions[k]: the request input for argument k
  for (const auto& arg : args) {
    const auto it = std::find(names.begin(), names.end(), arg.name);
    if (it == names.end()) return std::nullopt;
    positions.push_back(static_cast<std::size_t>(it - names.begin()));
  }
  // Each name once: equal counts and every argument found means no name was used twice.
  auto sorted = positions;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) return std::nullopt;
  return positions;
}

std::optional<std::string> adapt_argument(const ForwardArg& arg, c10::IValue& value) {
  const auto one = [&](const char* what) -> std::optional<std::string> {
    return "input '" + arg.name + "': forward takes " + what + ", so it needs exactly one element";
  };
  switch (arg.kind) {
    case ArgKind::tensor:
    case ArgKind::string_list:
      return std::nullopt;
    case ArgKind::string:
      if (!value.isList()) return std::nullopt;
      if (value.toListRef().size() != 1) return one("a str");
      value = value.toListRef()[0];
      return std::nullopt;
    case ArgKind::int_scalar:
      if (!value.isTensor()) return std::nullopt;
      if (value.toTensor().numel() != 1) return one("an int");
      value = value.toTensor().item().toLong();
      return std::nullopt;
    case ArgKind::float_scalar:
      if (!value.isTensor()) return std::nullopt;
      if (value.toTensor().numel() != 1) return one("a float");
      value = value.toTensor().item().toDouble();
      return std::nullopt;
    case ArgKind::bool_scalar:
      if (!value.isTensor()) return std::nullopt;
      if (value.toTensor().numel() != 1) return one("a bool");
      value = value.toTensor().item().toBool();
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace respawn::worker
