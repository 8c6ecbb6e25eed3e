#include "custos/mcp/http_get.h"

#include <curl/curl.h>

#include <memory>

namespace custos::mcp {
namespace {

struct Body {
  std::string bytes;
  size_t max_bytes = 0;
  bool too_large = false;
};

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  Body& b = *static_cast<Body*>(user);
  if (b.bytes.size() + size * n > b.max_bytes) {
    b.too_large = true;
    return 0;  // aborts the transfer
  }
  b.bytes.append(data, size * n);
  return size * n;
}

struct CurlDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};

}  // namespace

Result<std::string> HttpGet(const std::string& url, size_t max_bytes, int64_t timeout_ms) {
  std::unique_ptr<CURL, CurlDeleter> h(curl_easy_init());
  if (h == nullptr)
    return Status(Reason::kInternal, "curl_easy_init failed");
  Body body;
  body.max_bytes = max_bytes;
  curl_easy_setopt(h.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(h.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h.get(), CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(h.get(), CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, &OnWrite);
  curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(h.get());
  long status = 0;
  curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &status);
  const std::string what = "GET " + url.substr(0, 256) + ": ";
  if (body.too_large) {
    return Status(Reason::kMcpServerUnavailable,
                  what + "the body is over " + std::to_string(max_bytes) + " bytes");
  }
  if (rc != CURLE_OK)
    return Status(Reason::kMcpServerUnavailable, what + curl_easy_strerror(rc));
  if (status != 200)
    return Status(Reason::kMcpServerUnavailable, what + "HTTP " + std::to_string(status));
  return std::move(body.bytes);
}

}  // namespace custos::mcp
