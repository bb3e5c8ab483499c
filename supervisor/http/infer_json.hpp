#pragma once
// The JSON body of a KServe v2 infer request, read faster where it is large: a 224x224 image is
// 150,528 numbers in `data`, and nlohmann's lexer alone takes ~30 ms for those, std::from_chars
// 3-4 ms (docs/performance.md). Thread-safe; pure.
#include <string_view>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"

namespace respawn {

// As parse_json_object(text), except that a `data` array of numbers (nested arrays allowed) in
// an element of the top-level `inputs` array is a binary value of JsonNumbers
// (respawn/tensor_codec.hpp), which pack_kserve_inputs packs exactly as it would the array. A
// `data` of anything else (strings, booleans, a number nlohmann would read otherwise), and any
// key that could hide `inputs` or `data` (one with an escape, a duplicate), is left to nlohmann.
Result<nlohmann::json> parse_infer_body(std::string_view text);

}  // namespace respawn
