#pragma once
// A model's text files: tokenizer.json (or a SentencePiece tokenizer.model),
// tokenizer_config.json and generation_config.json, from one of
//   - a folder that holds them (Hugging Face's layout);
//   - a lone tokenizer.json / tokenizer.model (no companions);
//   - a TorchScript model file that carries them as extra files
//     (torch.jit.save(m, path, _extra_files={"tokenizer.json": ...})), so that one file serves.
// The supervisor reads the tokenizer and its companions; the worker only the tokenizer.
// Thread-compatible; reads the files on each call.
#include <optional>
#include <string>

#include "respawn/tokenizer.hpp"

namespace respawn {

class TextFiles {
 public:
  explicit TextFiles(std::string path) : path_(std::move(path)) {}

  // Whether `model_path` is a model file (a zip archive) that carries a tokenizer.json.
  static bool embedded_in(const std::string& model_path);

  // Throws TokenizerError, naming the file: unreadable, malformed or unsupported.
  Tokenizer tokenizer() const;
  // A companion's bytes (e.g. "tokenizer_config.json"); nullopt when there is none. Throws
  // TokenizerError when a model file cannot be read as an archive.
  std::optional<std::string> read(const std::string& name) const;
  // Where `name` is read from, for messages: "dir/name" or "model.pt:extra/name".
  std::string where(const std::string& name) const;

 private:
  std::string path_;
  bool is_dir() const;
  bool is_archive() const;
};

// The bytes of the member of the zip archive at `path` whose name ends with `suffix` (stored,
// as torch.jit.save writes them; ZIP64 is read); nullopt when there is none. Throws
// std::runtime_error when the file is not a readable zip archive or the member is compressed.
std::optional<std::string> read_zip_member(const std::string& path, const std::string& suffix);

}  // namespace respawn
