// Tests for the IPC frame codec (common/respawn/frame.hpp).
#include "respawn/frame.hpp"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace respawn::ipc {
namespace {

Frame make_frame(MessageType type, std::uint64_t id, std::string json, std::string binary) {
  Frame f;
  f.type = type;
  f.request_id = id;
  f.json = std::move(json);
  f.binary = std::move(binary);
  return f;
}

void expect_same(const Frame& a, const Frame& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.json, b.json);
  EXPECT_EQ(a.binary, b.binary);
}

// A valid encoded header with the given fields patched in, for corruption tests.
std::string raw_header(FrameHeader h) {
  std::string out(kHeaderSize, '\0');
  encode_header(h, out.data());
  return out;
}

TEST(Frame, EncodeHeaderIsLittleEndianWithFixedLayout) {
  FrameHeader h;
  h.type = static_cast<std::uint16_t>(MessageType::generate);
  h.request_id = 0x0102030405060708ull;
  h.json_len = 0x11223344;
  h.bin_len = 0xA1B2C3D4;
  std::string out(kHeaderSize, '\0');
  encode_header(h, out.data());

  const std::vector<unsigned char> expected = {
      'R',  'S',  'P',  'N',                           // magic
      0x01, 0x00,                                      // version 1
      0x03, 0x00,                                      // type generate
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // request id
      0x44, 0x33, 0x22, 0x11,                          // json_len
      0xD4, 0xC3, 0xB2, 0xA1,                          // bin_len
  };
  ASSERT_EQ(expected.size(), kHeaderSize);
  EXPECT_EQ(std::vector<unsigned char>(out.begin(), out.end()), expected);
}

TEST(Frame, DecodeHeaderInvertsEncodeHeader) {
  FrameHeader h;
  h.type = 9;
  h.request_id = std::numeric_limits<std::uint64_t>::max() - 5;
  h.json_len = 7;
  h.bin_len = 0xFFFFFFFF;
  const std::string raw = raw_header(h);
  const FrameHeader back = decode_header(raw.data());
  EXPECT_EQ(back.magic, kMagic);
  EXPECT_EQ(back.version, kVersion);
  EXPECT_EQ(back.type, 9);
  EXPECT_EQ(back.request_id, h.request_id);
  EXPECT_EQ(back.json_len, 7u);
  EXPECT_EQ(back.bin_len, 0xFFFFFFFFu);
}

TEST(Frame, EncodeFrameLaysOutHeaderJsonThenBinary) {
  const Frame f = make_frame(MessageType::infer, 42, "{\"a\":1}", std::string("\x00\x01\x02", 3));
  const std::string bytes = encode_frame(f);
  ASSERT_EQ(bytes.size(), kHeaderSize + 7 + 3);
  const FrameHeader h = decode_header(bytes.data());
  EXPECT_EQ(h.type, static_cast<std::uint16_t>(MessageType::infer));
  EXPECT_EQ(h.request_id, 42u);
  EXPECT_EQ(h.json_len, 7u);
  EXPECT_EQ(h.bin_len, 3u);
  EXPECT_EQ(bytes.substr(kHeaderSize, 7), "{\"a\":1}");
  EXPECT_EQ(bytes.substr(kHeaderSize + 7), std::string("\x00\x01\x02", 3));
}

TEST(Frame, RoundTripWithJsonAndBinary) {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  const Frame f = make_frame(MessageType::result, 7, R"({"outputs":[1,2,3]})", binary);
  FrameDecoder d;
  d.feed(encode_frame(f));
  auto got = d.next();
  ASSERT_TRUE(got.has_value());
  expect_same(*got, f);
  EXPECT_FALSE(d.next().has_value());
  EXPECT_FALSE(d.error().has_value());
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(Frame, RoundTripWithEmptyParts) {
  const Frame f = make_frame(MessageType::heartbeat, 0, "", "");
  const std::string bytes = encode_frame(f);
  EXPECT_EQ(bytes.size(), kHeaderSize);
  FrameDecoder d;
  d.feed(bytes);
  auto got = d.next();
  ASSERT_TRUE(got.has_value());
  expect_same(*got, f);
}

TEST(Frame, RoundTripWithOnlyBinary) {
  const Frame f = make_frame(MessageType::infer, 3, "", std::string(100, '\xAB'));
  FrameDecoder d;
  d.feed(encode_frame(f));
  auto got = d.next();
  ASSERT_TRUE(got.has_value());
  expect_same(*got, f);
}

TEST(Frame, RoundTripWithMaxRequestId) {
  const Frame f =
      make_frame(MessageType::cancel, std::numeric_limits<std::uint64_t>::max(), "{}", "x");
  FrameDecoder d;
  d.feed(encode_frame(f));
  auto got = d.next();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->request_id, std::numeric_limits<std::uint64_t>::max());
  expect_same(*got, f);
}

TEST(Frame, EveryKnownTypeRoundTrips) {
  for (std::uint16_t t = 1; t <= 9; ++t) {
    const Frame f = make_frame(static_cast<MessageType>(t), t, "{}", "");
    FrameDecoder d;
    d.feed(encode_frame(f));
    auto got = d.next();
    ASSERT_TRUE(got.has_value()) << "type " << t;
    EXPECT_EQ(got->type, f.type);
    EXPECT_NE(to_string(got->type), "unknown");
  }
}

TEST(Frame, IsKnownTypeBounds) {
  EXPECT_FALSE(is_known_type(0));
  EXPECT_TRUE(is_known_type(1));
  EXPECT_TRUE(is_known_type(9));
  EXPECT_TRUE(is_known_type(10));
  EXPECT_FALSE(is_known_type(11));
  EXPECT_FALSE(is_known_type(0xFFFF));
  EXPECT_EQ(to_string(MessageType::generate), "generate");
  EXPECT_EQ(to_string(MessageType::shutdown), "shutdown");
  EXPECT_EQ(to_string(MessageType::configure), "configure");
}

TEST(FrameDecoder, ByteByByte) {
  const Frame f = make_frame(MessageType::token, 99, R"({"text":"hi"})", "bin");
  const std::string bytes = encode_frame(f);
  FrameDecoder d;
  for (std::size_t i = 0; i + 1 < bytes.size(); ++i) {
    d.feed(std::string_view(&bytes[i], 1));
    EXPECT_FALSE(d.next().has_value()) << "frame complete after only " << i + 1 << " bytes";
    EXPECT_FALSE(d.error().has_value());
  }
  d.feed(std::string_view(&bytes.back(), 1));
  auto got = d.next();
  ASSERT_TRUE(got.has_value());
  expect_same(*got, f);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(FrameDecoder, SeveralFramesInOneFeed) {
  std::vector<Frame> frames = {
      make_frame(MessageType::ready, 0, R"({"model":"demo"})", ""),
      make_frame(MessageType::token, 1, R"({"text":"a"})", ""),
      make_frame(MessageType::result, 1, "{}", std::string(70, '\x01')),
      make_frame(MessageType::heartbeat, 0, "", ""),
  };
  std::string stream;
  for (const auto& f : frames) stream += encode_frame(f);
  FrameDecoder d;
  d.feed(stream);
  for (const auto& f : frames) {
    auto got = d.next();
    ASSERT_TRUE(got.has_value());
    expect_same(*got, f);
  }
  EXPECT_FALSE(d.next().has_value());
  EXPECT_FALSE(d.error().has_value());
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(FrameDecoder, FeedsSplitAcrossFrameBoundaries) {
  // Chunks of 7 bytes straddle headers and bodies of consecutive frames.
  std::vector<Frame> frames;
  std::string stream;
  for (std::uint64_t i = 0; i < 20; ++i) {
    frames.push_back(make_frame(MessageType::token, i, std::string(i, 'j'), std::string(i, 'b')));
    stream += encode_frame(frames.back());
  }
  FrameDecoder d;
  std::vector<Frame> got;
  for (std::size_t at = 0; at < stream.size(); at += 7) {
    d.feed(std::string_view(stream).substr(at, 7));
    while (auto f = d.next()) got.push_back(std::move(*f));
  }
  ASSERT_EQ(got.size(), frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) expect_same(got[i], frames[i]);
  EXPECT_FALSE(d.error().has_value());
}

TEST(FrameDecoder, TruncatedFrameNeedsMoreWithoutError) {
  const std::string bytes = encode_frame(make_frame(MessageType::result, 5, "{\"x\":1}", "abc"));
  FrameDecoder d;
  d.feed(bytes.substr(0, bytes.size() - 1));
  EXPECT_FALSE(d.next().has_value());
  EXPECT_FALSE(d.error().has_value());
  EXPECT_EQ(d.buffered(), bytes.size() - 1);
  d.feed(bytes.substr(bytes.size() - 1));
  auto got = d.next();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->binary, "abc");
}

TEST(FrameDecoder, PartialHeaderNeedsMoreWithoutError) {
  const std::string bytes = encode_frame(make_frame(MessageType::result, 5, "", ""));
  FrameDecoder d;
  d.feed(bytes.substr(0, kHeaderSize - 1));
  EXPECT_FALSE(d.next().has_value());
  EXPECT_FALSE(d.error().has_value());
}

TEST(FrameDecoder, BadMagicIsAnError) {
  FrameHeader h;
  h.magic = 0x12345678;
  h.type = static_cast<std::uint16_t>(MessageType::result);
  FrameDecoder d;
  d.feed(raw_header(h));
  EXPECT_FALSE(d.next().has_value());
  ASSERT_TRUE(d.error().has_value());
  EXPECT_EQ(d.error()->kind, ErrorKind::bad_input);
  EXPECT_NE(d.error()->message.find("magic"), std::string::npos);
}

TEST(FrameDecoder, BadVersionIsAnError) {
  FrameHeader h;
  h.version = 2;
  h.type = static_cast<std::uint16_t>(MessageType::result);
  FrameDecoder d;
  d.feed(raw_header(h));
  EXPECT_FALSE(d.next().has_value());
  ASSERT_TRUE(d.error().has_value());
  EXPECT_EQ(d.error()->kind, ErrorKind::bad_input);
  EXPECT_NE(d.error()->message.find("version 2"), std::string::npos) << d.error()->message;
}

TEST(FrameDecoder, UnknownTypeIsAnError) {
  for (std::uint16_t type : {std::uint16_t{0}, std::uint16_t{11}, std::uint16_t{0xFFFF}}) {
    FrameHeader h;
    h.type = type;
    FrameDecoder d;
    d.feed(raw_header(h));
    EXPECT_FALSE(d.next().has_value());
    ASSERT_TRUE(d.error().has_value()) << "type " << type;
    EXPECT_EQ(d.error()->kind, ErrorKind::bad_input);
    EXPECT_NE(d.error()->message.find(std::to_string(type)), std::string::npos);
  }
}

TEST(FrameDecoder, OversizedFrameIsTooLargeBeforeItsBodyArrives) {
  FrameDecoder d(100);
  // The limit counts the header too: 24 + 70 + 6 = 100 is fine, 101 is not.
  d.feed(encode_frame(make_frame(MessageType::result, 1, std::string(70, 'j'), "123456")));
  ASSERT_TRUE(d.next().has_value());
  EXPECT_FALSE(d.error().has_value());

  FrameHeader h;
  h.type = static_cast<std::uint16_t>(MessageType::result);
  h.json_len = 70;
  h.bin_len = 7;
  d.feed(raw_header(h));  // only the header: the body is never sent
  EXPECT_FALSE(d.next().has_value());
  ASSERT_TRUE(d.error().has_value());
  EXPECT_EQ(d.error()->kind, ErrorKind::too_large);
}

TEST(FrameDecoder, HugeLengthsDoNotOverflowTheLimitCheck) {
  FrameHeader h;
  h.type = static_cast<std::uint16_t>(MessageType::result);
  h.json_len = 0xFFFFFFFF;
  h.bin_len = 0xFFFFFFFF;
  FrameDecoder d;
  d.feed(raw_header(h));
  EXPECT_FALSE(d.next().has_value());
  ASSERT_TRUE(d.error().has_value());
  EXPECT_EQ(d.error()->kind, ErrorKind::too_large);
}

TEST(FrameDecoder, ErrorStaysSetAndLaterFramesAreIgnored) {
  FrameHeader bad;
  bad.magic = 0;
  FrameDecoder d;
  d.feed(raw_header(bad));
  EXPECT_FALSE(d.next().has_value());
  ASSERT_TRUE(d.error().has_value());
  const std::string first_message = d.error()->message;

  d.feed(encode_frame(make_frame(MessageType::result, 1, "{}", "")));
  EXPECT_FALSE(d.next().has_value());
  EXPECT_FALSE(d.next().has_value());
  ASSERT_TRUE(d.error().has_value());
  EXPECT_EQ(d.error()->message, first_message);
}

TEST(FrameDecoder, ErrorAfterAGoodFrame) {
  const Frame good = make_frame(MessageType::result, 1, "{}", "");
  FrameDecoder d;
  d.feed(encode_frame(good) + std::string(kHeaderSize, '\xEE'));
  auto got = d.next();
  ASSERT_TRUE(got.has_value());
  expect_same(*got, good);
  EXPECT_FALSE(d.next().has_value());
  EXPECT_TRUE(d.error().has_value());
}

TEST(FrameDecoder, GarbageBytesAreAnError) {
  FrameDecoder d;
  d.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_FALSE(d.next().has_value());
  ASSERT_TRUE(d.error().has_value());
  EXPECT_EQ(d.error()->kind, ErrorKind::bad_input);
}

TEST(Frame, ValidateHeaderAcceptsExactLimit) {
  FrameHeader h;
  h.type = static_cast<std::uint16_t>(MessageType::infer);
  h.json_len = 10;
  h.bin_len = 10;
  EXPECT_FALSE(validate_header(h, kHeaderSize + 20).has_value());
  auto err = validate_header(h, kHeaderSize + 19);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->kind, ErrorKind::too_large);
}

}  // namespace
}  // namespace respawn::ipc
