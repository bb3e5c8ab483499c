#include "http/http_server.hpp"

#include <gtest/gtest.h>

namespace respawn {
namespace {

bool loopback(const char* text) {
  return is_loopback_peer(boost::asio::ip::make_address(text));
}

TEST(HttpServer, OnlyLoopbackPeersCountAsLocalForTheAdminApi) {
  EXPECT_TRUE(loopback("127.0.0.1"));
  EXPECT_TRUE(loopback("127.8.9.10"));
  EXPECT_TRUE(loopback("::1"));
  EXPECT_TRUE(loopback("::ffff:127.0.0.1"));
  EXPECT_FALSE(loopback("10.0.0.1"));
  EXPECT_FALSE(loopback("192.168.1.20"));
  EXPECT_FALSE(loopback("::ffff:10.1.1.1"));
  EXPECT_FALSE(loopback("2001:db8::1"));
  EXPECT_FALSE(loopback("0.0.0.0"));
}

}  // namespace
}  // namespace respawn
