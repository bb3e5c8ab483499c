// respawn-bench-tokenizer: single-thread encode throughput of respawn's tokenizer
// (text/respawn/tokenizer.hpp) over a JSON list of documents, as one JSON line. Driven by
// bench/tokenizer_throughput.py, which times Hugging Face tokenizers on the same documents.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "respawn/tokenizer.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Encode throughput of a tokenizer.json, single thread"};
  std::string tokenizer_path, documents_path;
  int repeats = 3;
  bool add_special_tokens = false;
  app.add_option("--tokenizer", tokenizer_path, "tokenizer.json")->required();
  app.add_option("--documents", documents_path, "a JSON list of strings")->required();
  app.add_option("--repeats", repeats, "timed passes over the documents (after one warm-up)");
  app.add_flag("--add-special-tokens", add_special_tokens);
  CLI11_PARSE(app, argc, argv);

  const respawn::Tokenizer tokenizer = respawn::Tokenizer::from_file(tokenizer_path);
  std::ifstream in(documents_path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  const auto documents = nlohmann::json::parse(text.str()).get<std::vector<std::string>>();
  std::size_t bytes = 0;
  for (const auto& d : documents) bytes += d.size();

  // The warm-up pass also gives the ids' count and sum, to check agreement with the library.
  std::uint64_t count = 0, sum = 0;
  for (const auto& d : documents) {
    for (const std::uint32_t id : tokenizer.encode(d, add_special_tokens)) {
      ++count;
      sum += id;
    }
  }
  std::vector<double> mb_per_s;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    std::size_t ids = 0;
    for (const auto& d : documents) ids += tokenizer.encode(d, add_special_tokens).size();
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    if (ids != count) return 1;
    mb_per_s.push_back(static_cast<double>(bytes) / took.count() / 1e6);
  }
  std::sort(mb_per_s.begin(), mb_per_s.end());
  nlohmann::json out = {{"bytes", bytes},
                        {"documents", documents.size()},
                        {"ids", count},
                        {"id_sum", sum},
                        {"mb_per_s_median", mb_per_s[mb_per_s.size() / 2]}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
