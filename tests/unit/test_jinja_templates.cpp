// Real chat templates (tests/data/chat_templates/*.jinja) rendered by respawn_text compared byte
// for byte with what Python jinja2 renders in transformers' apply_chat_template environment:
// tests/data/chat_templates/references.json, made by scripts/make_template_refs.py.
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "respawn/jinja.hpp"

namespace respawn {
namespace {

using nlohmann::ordered_json;

std::filesystem::path data_dir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "chat_templates";
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const ordered_json& references() {
  static const ordered_json refs = ordered_json::parse(read_file(data_dir() / "references.json"));
  return refs;
}

RenderOptions options_from(const ordered_json& now) {
  std::tm tm{};
  tm.tm_year = now.at("year").get<int>() - 1900;
  tm.tm_mon = now.at("month").get<int>() - 1;
  tm.tm_mday = now.at("day").get<int>();
  tm.tm_hour = now.at("hour").get<int>();
  tm.tm_min = now.at("minute").get<int>();
  tm.tm_sec = now.at("second").get<int>();
  timegm(&tm);  // fills in the weekday and day of the year
  RenderOptions options;
  options.now = tm;
  return options;
}

ChatTemplateInputs inputs_from(const ordered_json& in) {
  ChatTemplateInputs inputs;
  inputs.messages = in.at("messages");
  inputs.add_generation_prompt = in.at("add_generation_prompt").get<bool>();
  inputs.bos_token = in.at("bos_token").get<std::string>();
  inputs.eos_token = in.at("eos_token").get<std::string>();
  if (in.contains("tools")) inputs.tools = in.at("tools");
  if (in.contains("documents")) inputs.documents = in.at("documents");
  if (in.contains("extra")) inputs.extra = in.at("extra");
  return inputs;
}

TEST(JinjaTemplates, TheReferencesCoverEveryTemplateWithSeveralCases) {
  std::map<std::string, int> per_template;
  for (const auto& c : references().at("cases"))
    ++per_template[c.at("template").get<std::string>()];
  for (const auto& entry : std::filesystem::directory_iterator(data_dir())) {
    if (entry.path().extension() != ".jinja") continue;
    EXPECT_GE(per_template[entry.path().filename().string()], 5) << entry.path();
  }
  EXPECT_GE(per_template.size(), 7u);
}

TEST(JinjaTemplates, EveryReferenceCaseRendersByteForByteOrRaisesTheSameError) {
  const RenderOptions options = options_from(references().at("now"));
  std::map<std::string, JinjaTemplate> templates;
  int checked = 0;
  for (const auto& c : references().at("cases")) {
    const std::string name = c.at("template").get<std::string>();
    SCOPED_TRACE(name + " / " + c.at("name").get<std::string>());
    auto it = templates.find(name);
    if (it == templates.end()) {
      auto parsed = JinjaTemplate::parse(read_file(data_dir() / name));
      ASSERT_TRUE(parsed.ok()) << parsed.error().message << " (line " << parsed.error().line << ")";
      it = templates.emplace(name, *parsed).first;
    }
    auto out = apply_chat_template(it->second, inputs_from(c.at("inputs")), options);
    if (c.contains("output")) {
      ASSERT_TRUE(out.ok()) << out.error().message << " (line " << out.error().line << ")";
      EXPECT_EQ(*out, c.at("output").get<std::string>());
    } else {
      ASSERT_FALSE(out.ok()) << "rendered instead of raising: " << *out;
      if (c.at("error_type") == "TemplateError") {
        // raise_exception(message): the template's own message, exactly
        EXPECT_EQ(out.error().kind, TemplateError::Kind::raised);
        EXPECT_EQ(out.error().message, c.at("error").get<std::string>());
      } else {
        EXPECT_EQ(out.error().kind, TemplateError::Kind::render) << out.error().message;
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(references().at("cases").size()));
}

TEST(JinjaTemplates, AParsedTemplateRendersTheSameTwice) {
  auto parsed = JinjaTemplate::parse(read_file(data_dir() / "qwen2.5.jinja"));
  ASSERT_TRUE(parsed.ok());
  ChatTemplateInputs in;
  in.messages = ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  in.add_generation_prompt = true;
  JinjaTemplate copy = *parsed;
  auto a = apply_chat_template(*parsed, in);
  auto b = apply_chat_template(copy, in);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace respawn
