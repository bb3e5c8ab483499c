#include "http/status_page.hpp"

#include <array>
#include <random>

namespace respawn {
namespace {

std::string base64(const unsigned char* data, std::size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < n; i += 3) {
    const unsigned v =
        (data[i] << 16) | ((i + 1 < n ? data[i + 1] : 0) << 8) | (i + 2 < n ? data[i + 2] : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < n ? kAlphabet[v & 63] : '=';
  }
  return out;
}

std::string fresh_nonce() {
  static thread_local std::random_device device;
  std::array<unsigned char, 16> bytes{};
  for (auto& b : bytes) b = static_cast<unsigned char>(device());
  return base64(bytes.data(), bytes.size());
}

}  // namespace

HttpResponse status_page_response(unsigned version) {
  const auto nonce = fresh_nonce();
  std::string html(status_page_html());
  constexpr std::string_view kMark = "{{NONCE}}";
  for (auto at = html.find(kMark); at != std::string::npos; at = html.find(kMark, at)) {
    html.replace(at, kMark.size(), nonce);
    at += nonce.size();
  }
  HttpResponse res{http::status::ok, version};
  res.set(http::field::content_type, "text/html; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce +
              "'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set("X-Frame-Options", "DENY");
  res.body() = std::move(html);
  return res;
}

}  // namespace respawn
