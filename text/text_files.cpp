#include "respawn/text_files.hpp"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace respawn {

namespace fs = std::filesystem;

namespace {

// Little-endian fields of the zip format (APPNOTE.TXT, section 4).
std::uint64_t le(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

class Archive {
 public:
  explicit Archive(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) fail("cannot open it");
    in_.seekg(0, std::ios::end);
    size_ = static_cast<std::uint64_t>(in_.tellg());
  }

  std::optional<std::string> find(const std::string& suffix) {
    // The end of central directory record: in the last 64 KiB + 22 bytes (its comment <= 64 KiB).
    const std::uint64_t tail = std::min<std::uint64_t>(size_, 65557);
    const std::string end = bytes(size_ - tail, tail);
    std::size_t at = std::string::npos;
    for (std::size_t i = end.size() >= 22 ? end.size() - 22 + 1 : 0; i-- > 0;) {
      if (le(end.data() + i, 4) == 0x06054b50) {
        at = i;
        break;
      }
    }
    if (at == std::string::npos) fail("it is not a zip archive");
    std::uint64_t entries = le(end.data() + at + 10, 2);
    std::uint64_t directory = le(end.data() + at + 16, 4);
    if (entries == 0xffff || directory == 0xffffffff) {
      // ZIP64: the locator sits just before the record and points at the ZIP64 record.
      const std::uint64_t record_at = size_ - tail + at;
      if (record_at < 20) fail("a ZIP64 locator is missing");
      const std::string locator = bytes(record_at - 20, 20);
      if (le(locator.data(), 4) != 0x07064b50) fail("a ZIP64 locator is missing");
      const std::string record = bytes(le(locator.data() + 8, 8), 56);
      if (le(record.data(), 4) != 0x06064b50) fail("the ZIP64 record is malformed");
      entries = le(record.data() + 32, 8);
      directory = le(record.data() + 48, 8);
    }
    std::uint64_t offset = directory;
    for (std::uint64_t k = 0; k < entries; ++k) {
      const std::string header = bytes(offset, 46);
      if (le(header.data(), 4) != 0x02014b50) fail("its central directory is malformed");
      const auto method = le(header.data() + 10, 2);
      std::uint64_t size = le(header.data() + 24, 4);
      const auto name_length = le(header.data() + 28, 2);
      const auto extra_length = le(header.data() + 30, 2);
      const auto comment_length = le(header.data() + 32, 2);
      std::uint64_t local = le(header.data() + 42, 4);
      const std::string name = bytes(offset + 46, name_length);
      if (name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        if (size == 0xffffffff || local == 0xffffffff) {
          read_zip64_extra(bytes(offset + 46 + name_length, extra_length), header, size, local);
        }
        if (method != 0) fail(name + " is compressed; only stored members are read");
        const std::string local_header = bytes(local, 30);
        if (le(local_header.data(), 4) != 0x04034b50) fail("a local header is malformed");
        const std::uint64_t data =
            local + 30 + le(local_header.data() + 26, 2) + le(local_header.data() + 28, 2);
        return bytes(data, size);
      }
      offset += 46 + name_length + extra_length + comment_length;
    }
    return std::nullopt;
  }

 private:
  std::string path_;
  std::ifstream in_;
  std::uint64_t size_ = 0;

  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error(path_ + ": " + why);
  }

  std::string bytes(std::uint64_t from, std::uint64_t count) {
    if (from > size_ || count > size_ - from) fail("it is truncated");
    std::string out(count, '\0');
    in_.seekg(static_cast<std::streamoff>(from));
    in_.read(out.data(), static_cast<std::streamsize>(count));
    if (!in_) fail("cannot read it");
    return out;
  }

  // The ZIP64 extended information extra field (id 1): the 64-bit values of the fields that
  // are 0xffffffff in the header, in the order uncompressed size, compressed size, offset.
  void read_zip64_extra(const std::string& extra, const std::string& header, std::uint64_t& size,
                        std::uint64_t& local) {
    for (std::size_t i = 0; i + 4 <= extra.size();) {
      const auto id = le(extra.data() + i, 2);
      const auto length = le(extra.data() + i + 2, 2);
      if (id == 1 && i + 4 + length <= extra.size()) {
        std::size_t at = i + 4;
        const auto next = [&] {
          if (at + 8 > i + 4 + length) fail("a ZIP64 extra field is short");
          const auto v = le(extra.data() + at, 8);
          at += 8;
          return v;
        };
        if (le(header.data() + 24, 4) == 0xffffffff) size = next();
        if (le(header.data() + 20, 4) == 0xffffffff) next();  // compressed size
        if (le(header.data() + 42, 4) == 0xffffffff) local = next();
        return;
      }
      i += 4 + length;
    }
    fail("a ZIP64 extra field is missing");
  }
};

std::optional<std::string> read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<std::string> read_zip_member(const std::string& path, const std::string& suffix) {
  return Archive(path).find(suffix);
}

bool TextFiles::is_dir() const {
  return fs::is_directory(path_);
}

bool TextFiles::is_archive() const {
  std::ifstream in(path_, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "PK\x03\x04", 4) == 0;
}

bool TextFiles::embedded_in(const std::string& model_path) {
  const TextFiles files(model_path);
  if (files.is_dir() || !files.is_archive()) return false;
  try {
    return read_zip_member(model_path, "/extra/tokenizer.json").has_value();
  } catch (const std::exception&) {
    return false;  // not ours to judge here: the worker's load reports a broken model file
  }
}

Tokenizer TextFiles::tokenizer() const {
  if (is_dir()) {
    const fs::path dir(path_);
    return Tokenizer::from_file(
        (fs::exists(dir / "tokenizer.json") || !fs::exists(dir / "tokenizer.model")
             ? dir / "tokenizer.json"
             : dir / "tokenizer.model")
            .string());
  }
  if (!is_archive()) return Tokenizer::from_file(path_);
  std::optional<std::string> text;
  try {
    text = read_zip_member(path_, "/extra/tokenizer.json");
  } catch (const std::exception& e) {
    throw TokenizerError(e.what());
  }
  if (!text) throw TokenizerError(path_ + " carries no extra file tokenizer.json");
  try {
    return Tokenizer::from_json_text(*text);
  } catch (const TokenizerError& e) {
    throw TokenizerError(where("tokenizer.json") + ": " + e.what());
  }
}

std::optional<std::string> TextFiles::read(const std::string& name) const {
  if (is_dir()) return read_whole(fs::path(path_) / name);
  if (!is_archive()) return std::nullopt;
  try {
    return read_zip_member(path_, "/extra/" + name);
  } catch (const std::exception& e) {
    throw TokenizerError(e.what());
  }
}

std::string TextFiles::where(const std::string& name) const {
  if (is_dir()) return (fs::path(path_) / name).string();
  if (is_archive()) return path_ + ":extra/" + name;
  return path_;
}

}  // namespace respawn
