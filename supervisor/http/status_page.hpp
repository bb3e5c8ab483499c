#pragma once
// The status page (GET / and /status): supervisor/http/status_page.html, compiled in (the
// .cpp is generated from it at build time by supervisor/CMakeLists.txt).
#include <string>
#include <string_view>

#include "http/http_types.hpp"

namespace respawn {

// The HTML as in the source tree; its <script> and <style> carry nonce="{{NONCE}}".
std::string_view status_page_html();
// GET / and /status: the page with a fresh CSP nonce, no-store, and a strict
// Content-Security-Policy (inline code runs only with this response's nonce).
HttpResponse status_page_response(unsigned version);

}  // namespace respawn
