#pragma once
// A Jinja2 subset engine for Hugging Face chat templates: parses a template once, renders it with
// the semantics of Python jinja2 3.1 as transformers' apply_chat_template configures it
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its own tojson,
// raise_exception, strftime_now). docs/chat-templates.md lists what is supported. A construct
// outside the subset is an error naming it, at parse time where it can be seen then, never a
// silently different output.
//
// Thread-safety: a parsed JinjaTemplate is immutable; copies share the tree, and any number of
// threads may render the same template at once. Nothing here has global state.
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "respawn/result.hpp"

namespace respawn {

struct TemplateError {
  enum class Kind {
    syntax,       // the template is not valid Jinja
    unsupported,  // valid Jinja this engine does not implement (the message names the construct)
    raised,       // the template called raise_exception(message); `message` is the template's
    render,       // a runtime error Python jinja2 would also raise (type error, undefined, ...)
  };
  Kind kind = Kind::render;
  std::string message;
  int line = 0;  // 1-based line in the template source; 0 when unknown
};

std::string_view to_string(TemplateError::Kind kind);

// What a render can see besides the template's own variables.
struct RenderOptions {
  // strftime_now(format) formats this time; without it, the current local time (as transformers
  // does with datetime.now()). Tests fix it so that outputs are reproducible.
  std::optional<std::tm> now;
};

namespace jinja {
struct Node;
}

class JinjaTemplate {
 public:
  // Parses `source`. Errors: syntax, or unsupported naming the construct (e.g. "{% include %}").
  static Result<JinjaTemplate, TemplateError> parse(std::string_view source);

  // Renders with `variables` (a JSON object; its keys are the template's top-level names) and
  // the transformers globals raise_exception, strftime_now, namespace, range, dict.
  Result<std::string, TemplateError> render(const nlohmann::ordered_json& variables,
                                            const RenderOptions& options = {}) const;

 private:
  std::shared_ptr<const jinja::Node> root_;
};

// The inputs of transformers' apply_chat_template(..., tokenize=False).
struct ChatTemplateInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  bool add_generation_prompt = false;
  std::string bos_token;
  std::string eos_token;
  nlohmann::ordered_json tools;      // null = not given (the template sees None)
  nlohmann::ordered_json documents;  // null = not given (the template sees None)
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // more kwargs, override none
};

// Renders a chat template as transformers does: messages, tools, documents,
// add_generation_prompt, bos_token, eos_token and the extra kwargs as variables.
Result<std::string, TemplateError> apply_chat_template(const JinjaTemplate& chat_template,
                                                       const ChatTemplateInputs& inputs,
                                                       const RenderOptions& options = {});

}  // namespace respawn
