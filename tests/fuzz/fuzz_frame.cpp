// Fuzzes the IPC frame codec (common/frame.cpp): the decoder must never read past what it was
// fed, must stop for good at the first bad header, and every frame it returns must re-encode to
// exactly the bytes it consumed, however the stream is split into reads.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "respawn/frame.hpp"

using namespace respawn::ipc;

namespace {

struct Decoded {
  std::vector<Frame> frames;
  bool broken = false;
  std::size_t buffered = 0;
};

// Feeds `stream` in reads of the sizes `splits` cycles through (a socket delivers any split).
Decoded decode(std::string_view stream, std::string_view splits, std::size_t max_frame_bytes) {
  FrameDecoder decoder(max_frame_bytes);
  Decoded out;
  std::size_t at = 0, turn = 0;
  while (at < stream.size()) {
    std::size_t n = stream.size() - at;
    if (!splits.empty()) n = 1 + static_cast<unsigned char>(splits[turn++ % splits.size()]);
    n = std::min(n, stream.size() - at);
    decoder.feed(stream.substr(at, n));
    at += n;
    while (auto frame = decoder.next()) out.frames.push_back(std::move(*frame));
  }
  out.broken = decoder.error().has_value();
  out.buffered = decoder.buffered();
  // A broken stream stays broken: more bytes change nothing.
  if (out.broken) {
    decoder.feed(std::string(kHeaderSize, '\0'));
    FUZZ_CHECK(!decoder.next() && decoder.error(), "decoder recovered after an error");
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // Byte 0 picks the frame size limit and how many of the next bytes give the read sizes.
  const std::uint8_t control = data[0];
  const std::size_t max_frame_bytes = (control & 1) ? 4096 : kDefaultMaxFrameBytes;
  const std::size_t split_len = std::min<std::size_t>((control >> 1) & 7, size - 1);
  const std::string_view splits(reinterpret_cast<const char*>(data) + 1, split_len);
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1 + split_len,
                                size - 1 - split_len);

  if (stream.size() >= kHeaderSize) {
    char again[kHeaderSize];
    encode_header(decode_header(stream.data()), again);
    FUZZ_CHECK(std::string_view(again, kHeaderSize) == stream.substr(0, kHeaderSize),
               "header does not round-trip");
  }

  const Decoded whole = decode(stream, {}, max_frame_bytes);
  const Decoded split = decode(stream, splits, max_frame_bytes);
  FUZZ_CHECK(whole.frames.size() == split.frames.size() && whole.broken == split.broken,
             "the result depends on how the stream is split into reads");

  std::string consumed;
  for (std::size_t i = 0; i < whole.frames.size(); ++i) {
    const Frame& f = whole.frames[i];
    const Frame& g = split.frames[i];
    FUZZ_CHECK(f.type == g.type && f.request_id == g.request_id && f.json == g.json &&
                   f.binary == g.binary,
               "split and whole decodes differ");
    FUZZ_CHECK(is_known_type(static_cast<std::uint16_t>(f.type)), "unknown type decoded");
    FUZZ_CHECK(to_string(f.type) != "unknown", "a known type has no name");
    consumed += encode_frame(f);
  }
  FUZZ_CHECK(consumed.size() <= stream.size() && stream.substr(0, consumed.size()) == consumed,
             "decoded frames do not re-encode to the consumed bytes");
  if (!whole.broken) {
    FUZZ_CHECK(whole.buffered == stream.size() - consumed.size(), "bytes were lost or invented");
    FUZZ_CHECK(
        whole.buffered < kHeaderSize ||
            !validate_header(decode_header(stream.data() + consumed.size()), max_frame_bytes),
        "a valid header was left undecoded without an error");
  } else {
    FUZZ_CHECK(stream.size() - consumed.size() >= kHeaderSize, "error without a whole header");
    FUZZ_CHECK(validate_header(decode_header(stream.data() + consumed.size()), max_frame_bytes),
               "error on a header that validates");
  }
  return 0;
}
