#!/usr/bin/env python3
"""Renders the chat templates in tests/data/chat_templates/ with Python jinja2, set up exactly as
transformers' apply_chat_template sets it up, over a set of conversations, and writes
tests/data/chat_templates/references.json. The C++ tests (tests/unit/test_jinja_templates.cpp)
render the same cases with respawn_text and compare byte for byte.

    scripts/python scripts/make_template_refs.py

Only jinja2 is needed (not transformers): _compile_jinja_template below copies transformers'
(src/transformers/utils/chat_template_utils.py), except that strftime_now formats a fixed time
(NOW) so that the outputs do not depend on the day they are made; the C++ test uses the same.
"""

import json
import pathlib
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "chat_templates"
NOW = datetime(2025, 3, 14, 15, 9, 26)


def _compile_jinja_template(chat_template):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # transformers overrides jinja's tojson (which escapes HTML characters)
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(format):
        return NOW.strftime(format)  # transformers: datetime.now().strftime(format)

    jinja_env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    jinja_env.filters["tojson"] = tojson
    jinja_env.globals["raise_exception"] = raise_exception
    jinja_env.globals["strftime_now"] = strftime_now
    return jinja_env.from_string(chat_template)


def render(source, inputs):
    """What apply_chat_template(messages, tools=..., documents=..., tokenize=False,
    add_generation_prompt=..., **kwargs) renders, with the tokenizer's special tokens map."""
    compiled = _compile_jinja_template(source)
    kwargs = {"bos_token": inputs["bos_token"], "eos_token": inputs["eos_token"]}
    kwargs.update(inputs.get("extra", {}))
    return compiled.render(
        messages=inputs["messages"],
        tools=inputs.get("tools"),
        documents=inputs.get("documents"),
        add_generation_prompt=inputs["add_generation_prompt"],
        **kwargs,
    )


# ---- conversations --------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city (°C or °F).",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. \"Paris\" or 北京"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "default": 1},
            },
            "required": ["city"],
        },
        "return": {"type": "number", "description": "The temperature."},
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "number"}},
            "required": ["query"],
        },
    },
}

HELLO = [{"role": "user", "content": "Hello!"}]
MULTI_TURN = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3+3?"},
]
NO_SYSTEM_ENDS_WITH_ASSISTANT = [
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
]
WHITESPACE = [
    {"role": "system", "content": "  Be kind.\n"},
    {"role": "user", "content": "\n\n  padded question  \t\n"},
    {"role": "assistant", "content": "  padded answer \n"},
    {"role": "user", "content": "ok "},
]
NON_ASCII = [
    {"role": "system", "content": "Réponds en français — s'il te plaît. \"quotes\" and \\ backslash"},
    {"role": "user", "content": "नमस्ते, आप कैसे हैं? 你好，世界！ 👋🏽🎉"},
    {"role": "assistant", "content": "मैं ठीक हूँ। 我很好。 😀"},
    {"role": "user", "content": "Ünïcödé\ttab\u00a0nbsp and a zero-width\u200bspace"},
]
TOOL_CALL_ARGS = {"city": "Paris", "unit": "celsius", "lat": 48.8566, "days": 3, "metric": True,
                  "note": None, "tags": ["a", "ü"]}
TOOL_CONVERSATION = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call12345", "type": "function",
             "function": {"name": "get_weather", "arguments": TOOL_CALL_ARGS}}
        ],
    },
    {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
     "content": "{\"temperature\": 22.5, \"sky\": \"☀\"}"},
    {"role": "assistant", "content": "It is 22.5 °C and sunny."},
    {"role": "user", "content": "Thanks!"},
]
QWEN_PARALLEL_CALLS = [
    {"role": "user", "content": "Weather in Paris and Delhi?"},
    {
        "role": "assistant",
        "content": "Let me check both.",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "दिल्ली"}}},
        ],
    },
    {"role": "tool", "content": "18"},
    {"role": "tool", "content": "31"},
    {"role": "assistant", "content": "Paris 18, Delhi 31."},
]
LONG = [{"role": "system", "content": "Count."}] + [
    {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(60)
] + [{"role": "user", "content": "done?"}]
ROLES_NOT_ALTERNATING = [
    {"role": "user", "content": "one"},
    {"role": "user", "content": "two"},
]
GEMMA_PARTS = [
    {"role": "system", "content": [{"type": "text", "text": "Describe images briefly."}]},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "  What is this?  "}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
    {"role": "user", "content": "Sure?"},
]
LLAMA_IPYTHON = [
    {"role": "user", "content": "Search for the tallest building."},
    {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "brave_search",
                                          "arguments": {"query": "tallest building"}}}]},
    {"role": "ipython", "content": {"result": "Burj Khalifa", "height_m": 828}},
    {"role": "assistant", "content": "The Burj Khalifa."},
]
LLAMA_TOOL_RESULT_STRING = [
    {"role": "user", "content": "What is the weather?"},
    {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "content": "-3"},
]


TYPED_TOOL = {
    "type": "function",
    "function": {
        "name": "plan_trip",
        "description": "Plan a trip.  ",
        "parameters": {
            "type": "object",
            "properties": {
                "cities": {"type": "array", "items": {"type": "string"}, "description": "Stops"},
                "budget": {"type": "number", "description": " In euros "},
                "nights": {"type": "integer"},
                "flexible": {"type": "boolean", "description": "Dates may move"},
                "prefs": {"type": "object", "additionalProperties": {"type": "string"},
                          "description": "Free-form preferences"},
                "when": {"type": ["string", "integer"], "description": "A date or a day"},
                "extra": {"description": "Anything"},
            },
            "required": ["cities"],
        },
        "return": {"type": "object", "description": "The itinerary."},
    },
}
UNION_NULL_TOOL = {
    "type": "function",
    "function": {"name": "f", "description": "d", "parameters": {
        "type": "object", "properties": {"x": {"type": ["string", "null"]}}}},
}
QWEN3_THINKING = [
    {"role": "system", "content": "Think first."},
    {"role": "user", "content": "What is 17 * 3?"},
    {"role": "assistant", "content": "<think>\n17 * 3 = 51\n</think>\n\n51"},
    {"role": "user", "content": "And 17 * 4?"},
    {"role": "assistant", "content": "68", "reasoning_content": "17 * 4 = 68"},
]
QWEN3_MULTI_STEP = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "<think>\nI should call the tool.\n</think>\n\n",
     "tool_calls": [{"type": "function", "function": {
         "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "content": "18"},
    {"role": "user", "content": "<tool_response>\nlate result\n</tool_response>"},
    {"role": "assistant", "content": "<think>\nNow answer.\n</think>\n\nIt is 18 degrees."},
]


def case(name, messages, agp, tools=None, extra=None):
    inputs = {"messages": messages, "add_generation_prompt": agp}
    if tools is not None:
        inputs["tools"] = tools
    if extra:
        inputs["extra"] = extra
    return name, inputs


COMMON = [
    case("hello_generation_prompt", HELLO, True),
    case("hello_no_generation_prompt", HELLO, False),
    case("multi_turn_with_system", MULTI_TURN, True),
    case("ends_with_assistant", NO_SYSTEM_ENDS_WITH_ASSISTANT, False),
    case("whitespace_in_content", WHITESPACE, True),
    case("non_ascii", NON_ASCII, True),
    case("long_conversation", LONG, True),
]
NO_SYSTEM_COMMON = [c for c in COMMON if c[1]["messages"][0]["role"] != "system"] + [
    case("multi_turn_without_system", MULTI_TURN[1:], True),
    case("whitespace_without_system", WHITESPACE[1:], True),
    case("non_ascii_without_system", NON_ASCII[1:], False),
    case("long_without_system", LONG[1:], True),
]

TEMPLATES = {
    "chatml.jinja": {
        "tokens": ("", "<|im_end|>"),
        "cases": COMMON,
    },
    "qwen2.5.jinja": {
        "tokens": ("", "<|im_end|>"),
        "cases": COMMON + [
            case("tools_listed", MULTI_TURN, True, tools=[WEATHER_TOOL, SEARCH_TOOL]),
            case("tools_without_system", HELLO, True, tools=[WEATHER_TOOL]),
            case("tool_call_and_result", TOOL_CONVERSATION, True, tools=[WEATHER_TOOL]),
            case("parallel_calls_and_results", QWEN_PARALLEL_CALLS, False, tools=[WEATHER_TOOL]),
            case("tool_messages_without_tools", QWEN_PARALLEL_CALLS, True),
        ],
    },
    "qwen3.jinja": {
        "tokens": ("", "<|im_end|>"),
        "cases": COMMON + [
            case("tools_listed", MULTI_TURN, True, tools=[WEATHER_TOOL, SEARCH_TOOL]),
            case("tool_call_and_result", TOOL_CONVERSATION, True, tools=[WEATHER_TOOL]),
            case("parallel_calls_and_results", QWEN_PARALLEL_CALLS, True, tools=[WEATHER_TOOL]),
            case("thinking_in_content_and_reasoning_content", QWEN3_THINKING, False),
            case("multi_step_tool_with_string_arguments", QWEN3_MULTI_STEP, True,
                 tools=[WEATHER_TOOL]),
            case("enable_thinking_false", MULTI_TURN, True, extra={"enable_thinking": False}),
            case("enable_thinking_true", MULTI_TURN, True, extra={"enable_thinking": True}),
        ],
    },
    "hermes3-tool-use.jinja": {
        "tokens": ("<|begin_of_text|>", "<|im_end|>"),
        "cases": [
            case("typed_tool_schema_through_the_macro", MULTI_TURN, True,
                 tools=[TYPED_TOOL, WEATHER_TOOL, SEARCH_TOOL]),
            case("tool_call_and_result", TOOL_CONVERSATION, True, tools=[WEATHER_TOOL]),
            case("parallel_calls_and_results", QWEN_PARALLEL_CALLS, False,
                 tools=[WEATHER_TOOL, TYPED_TOOL]),
            case("non_ascii", NON_ASCII, True, tools=[SEARCH_TOOL]),
            case("long_conversation", LONG, True, tools=[SEARCH_TOOL]),
            case("without_tools_none_is_not_iterable", HELLO, True),
            # json_to_python_type recurses on the characters of "null" until Python's stack
            # runs out: an error, not a crash, in respawn too.
            case("union_with_null_recurses_without_end", HELLO, True, tools=[UNION_NULL_TOOL]),
        ],
    },
    "llama3.1.jinja": {
        "tokens": ("<|begin_of_text|>", "<|eot_id|>"),
        "cases": COMMON + [
            case("tools_in_user_message", MULTI_TURN, True, tools=[WEATHER_TOOL, SEARCH_TOOL]),
            case("tools_in_system_message", MULTI_TURN, True, tools=[WEATHER_TOOL],
                 extra={"tools_in_user_message": False}),
            case("tool_call_and_result", TOOL_CONVERSATION, True, tools=[WEATHER_TOOL]),
            case("tool_result_string_is_iterable", LLAMA_TOOL_RESULT_STRING, True,
                 tools=[WEATHER_TOOL]),
            case("builtin_tools_ipython", LLAMA_IPYTHON, True,
                 extra={"builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"]}),
            case("custom_date_string", HELLO, True, extra={"date_string": "01 Jan 2030"}),
            case("tools_but_no_user_message_raises", [], True, tools=[WEATHER_TOOL]),
            case("two_tool_calls_raise", [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": QWEN_PARALLEL_CALLS[1]["tool_calls"]}], True),
        ],
    },
    "llama3.2.jinja": {
        "tokens": ("<|begin_of_text|>", "<|eot_id|>"),
        "cases": COMMON + [
            case("tools_in_user_message", MULTI_TURN, True, tools=[WEATHER_TOOL]),
            case("tools_in_system_message", MULTI_TURN, False, tools=[WEATHER_TOOL, SEARCH_TOOL],
                 extra={"tools_in_user_message": False}),
            case("tool_call_and_result", TOOL_CONVERSATION, True, tools=[WEATHER_TOOL]),
        ],
    },
    "mistral-v0.3.jinja": {
        "tokens": ("<s>", "</s>"),
        "cases": COMMON + [
            case("tools_on_last_user_message", MULTI_TURN, True, tools=[WEATHER_TOOL, SEARCH_TOOL]),
            case("tool_call_and_result", TOOL_CONVERSATION, True, tools=[WEATHER_TOOL]),
            case("roles_not_alternating_raise", ROLES_NOT_ALTERNATING, True),
            case("bad_tool_call_id_raises", [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [
                    {"id": "short", "type": "function",
                     "function": {"name": "get_weather", "arguments": {}}}]}], True),
            case("unknown_role_raises", [{"role": "user", "content": "x"},
                                         {"role": "narrator", "content": "y"}], True),
        ],
    },
    "gemma2.jinja": {
        "tokens": ("<bos>", "<eos>"),
        "cases": NO_SYSTEM_COMMON + [
            case("system_role_raises", MULTI_TURN, True),
            case("roles_not_alternating_raise", ROLES_NOT_ALTERNATING, True),
        ],
    },
    "gemma3.jinja": {
        "tokens": ("<bos>", "<eos>"),
        "cases": COMMON + [
            case("content_parts_and_image", GEMMA_PARTS, True),
            case("roles_not_alternating_raise", ROLES_NOT_ALTERNATING, True),
        ],
    },
}


def main():
    out = {
        "generator": "scripts/make_template_refs.py",
        "jinja2": jinja2.__version__,
        "now": {"year": NOW.year, "month": NOW.month, "day": NOW.day, "hour": NOW.hour,
                "minute": NOW.minute, "second": NOW.second},
        "cases": [],
    }
    for template, spec in TEMPLATES.items():
        source = (DATA / template).read_text(encoding="utf-8")
        bos, eos = spec["tokens"]
        for name, inputs in spec["cases"]:
            inputs = {**inputs, "bos_token": bos, "eos_token": eos}
            entry = {"template": template, "name": name, "inputs": inputs}
            try:
                entry["output"] = render(source, inputs)
            except (jinja2.exceptions.TemplateError, TypeError, RecursionError) as e:
                entry["error"] = str(e)
                entry["error_type"] = type(e).__name__
            out["cases"].append(entry)
    path = DATA / "references.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    errors = sum("error" in c for c in out["cases"])
    print(f"wrote {path.relative_to(ROOT)}: {len(out['cases'])} cases ({errors} raise)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
