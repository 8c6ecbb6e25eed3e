#include "custos/effects/http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "custos/effects/address.h"

namespace custos::effects {
namespace {

using Clock = std::chrono::steady_clock;

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) {
      return false;
    }
  }
  return true;
}

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool IsAlwaysSensitive(std::string_view name) {
  return EqualsIgnoreCase(name, "authorization") || EqualsIgnoreCase(name, "cookie") ||
         EqualsIgnoreCase(name, "proxy-authorization");
}

Status ValidateRequest(const HttpRequest& req) {
  static constexpr std::string_view kMethods[] = {"GET",   "HEAD",   "POST",   "PUT",
                                                  "PATCH", "DELETE", "OPTIONS"};
  if (std::find(std::begin(kMethods), std::end(kMethods), req.method) == std::end(kMethods)) {
    return Status(Reason::kInvalidArgument,
                  "HTTP method must be one of GET HEAD POST PUT PATCH "
                  "DELETE OPTIONS");
  }
  if ((req.method == "GET" || req.method == "HEAD") && !req.body.empty()) {
    return Status(Reason::kInvalidArgument, req.method + " requests carry no body");
  }
  if (req.url.scheme != "http" && req.url.scheme != "https") {
    return Status(Reason::kInvalidArgument, "URL was not produced by ParseUrl");
  }
  static constexpr std::string_view kForbidden[] = {
      "host", "content-length", "transfer-encoding", "connection",       "upgrade",
      "te",   "trailer",        "keep-alive",        "proxy-connection", "expect"};
  for (size_t i = 0; i < req.headers.size(); ++i) {
    const HttpHeader& h = req.headers[i];
    const std::string at = "/headers/" + std::to_string(i);
    if (h.name.empty() || !std::all_of(h.name.begin(), h.name.end(), IsTokenChar)) {
      return Status(Reason::kInvalidArgument, "header name is not an HTTP token", at);
    }
    for (std::string_view f : kForbidden) {
      if (EqualsIgnoreCase(h.name, f)) {
        return Status(Reason::kInvalidArgument,
                      "header " + h.name + " is managed by the client and may not be set", at);
      }
    }
    for (char c : h.value) {
      unsigned char u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) {
        return Status(Reason::kInvalidArgument, "header " + h.name + " has a control character",
                      at);
      }
    }
  }
  return Status::Ok();
}

// The pinned address as raw bytes, checked against the URL host when that is a literal.
struct Pin {
  std::string text;  // canonical
  int family = 0;
  unsigned char bytes[16] = {};
};

Result<Pin> MakePin(const Url& url, std::string_view ip, Reason on_error) {
  std::optional<std::string> canon = CanonicalIp(ip);
  if (!canon) {
    return Status(on_error, "pinned address is not an IP address");
  }
  if (url.host_is_ip && CanonicalIp(url.host) != canon) {
    return Status(on_error, "pinned address differs from the URL's IP literal host");
  }
  Pin pin;
  pin.text = *canon;
  pin.family = pin.text.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  ::inet_pton(pin.family, pin.text.c_str(), pin.bytes);
  return pin;
}

struct HopState {
  const Pin* pin = nullptr;
  size_t max_body = 0;
  size_t max_header = 0;
  bool address_refused = false;
  bool body_too_large = false;
  bool headers_too_large = false;
  size_t header_bytes = 0;
  std::string body;
  std::vector<HttpHeader> headers;
};

size_t OnBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* st = static_cast<HopState*>(user);
  size_t n = size * nmemb;
  if (n > st->max_body - std::min(st->max_body, st->body.size())) {
    st->body_too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  st->body.append(data, n);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t nitems, void* user) {
  auto* st = static_cast<HopState*>(user);
  size_t n = size * nitems;
  st->header_bytes += n;
  if (st->header_bytes > st->max_header) {
    st->headers_too_large = true;
    return 0;
  }
  std::string_view line(data, n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (line.starts_with("HTTP/")) {
    st->headers.clear();  // a new response (after 1xx): only the last one's headers count
    return n;
  }
  if (line.empty()) {
    return n;
  }
  if ((line.front() == ' ' || line.front() == '\t') && !st->headers.empty()) {
    std::string& v = st->headers.back().value;  // obsolete line folding
    v += ' ';
    v.append(line.substr(line.find_first_not_of(" \t")));
    return n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return n;  // not a header line; ignore
  }
  std::string_view value = line.substr(colon + 1);
  size_t b = value.find_first_not_of(" \t");
  size_t e = value.find_last_not_of(" \t");
  value = b == std::string_view::npos ? std::string_view() : value.substr(b, e - b + 1);
  st->headers.push_back({std::string(line.substr(0, colon)), std::string(value), false});
  return n;
}

// Refuses to create a socket for any address but the pinned one: the connection never starts.
curl_socket_t OnOpenSocket(void* user, curlsocktype purpose, struct curl_sockaddr* addr) {
  auto* st = static_cast<HopState*>(user);
  bool match = false;
  if (purpose == CURLSOCKTYPE_IPCXN && addr->family == st->pin->family) {
    if (addr->family == AF_INET && addr->addrlen >= sizeof(sockaddr_in)) {
      sockaddr_in sin;
      std::memcpy(&sin, &addr->addr, sizeof sin);
      match = std::memcmp(&sin.sin_addr, st->pin->bytes, 4) == 0;
    } else if (addr->family == AF_INET6 && addr->addrlen >= sizeof(sockaddr_in6)) {
      sockaddr_in6 sin6;
      std::memcpy(&sin6, &addr->addr, sizeof sin6);
      match = std::memcmp(&sin6.sin6_addr, st->pin->bytes, 16) == 0;
    }
  }
  if (!match) {
    st->address_refused = true;
    return CURL_SOCKET_BAD;
  }
  return ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

void EnsureCurlInitialised() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlCleanup {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistCleanup {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlCleanup>;
using SlistPtr = std::unique_ptr<curl_slist, SlistCleanup>;

Status Append(SlistPtr* list, const std::string& entry) {
  curl_slist* next = curl_slist_append(list->get(), entry.c_str());
  if (next == nullptr) {
    return Status(Reason::kInternal, "out of memory building a header list");
  }
  list->release();
  list->reset(next);
  return Status::Ok();
}

struct Hop {
  const Url* url = nullptr;
  const std::string* method = nullptr;
  const std::vector<HttpHeader>* headers = nullptr;
  const std::string* body = nullptr;
  const Pin* pin = nullptr;
};

struct HopResult {
  int status = 0;
  std::vector<HttpHeader> headers;
  std::string body;
  std::string primary_ip;
  uint64_t sent = 0;
  uint64_t received = 0;
};

#define CUSTOS_CURL_SET(handle, opt, value)                             \
  do {                                                                  \
    if (curl_easy_setopt(handle, opt, value) != CURLE_OK) {             \
      return Status(Reason::kInternal, "libcurl refused option " #opt); \
    }                                                                   \
  } while (0)

Result<HopResult> PerformHop(const Hop& hop, const HttpOptions& opt, Clock::time_point deadline) {
  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (remaining.count() <= 0) {
    return Status(Reason::kEffectTimeout,
                  "HTTP deadline passed before contacting " + hop.url->host);
  }
  CurlPtr curl(curl_easy_init());
  if (!curl) {
    return Status(Reason::kInternal, "curl_easy_init failed");
  }
  CURL* c = curl.get();
  HopState state;
  state.pin = hop.pin;
  state.max_body = opt.max_body_bytes;
  state.max_header = opt.max_header_bytes;
  char errbuf[CURL_ERROR_SIZE] = {};

  const std::string url_text = hop.url->ToString();
  SlistPtr resolve;
  if (!hop.url->host_is_ip) {
    std::string addr = hop.pin->family == AF_INET6 ? "[" + hop.pin->text + "]" : hop.pin->text;
    CUSTOS_RETURN_IF_ERROR(
        Append(&resolve, hop.url->host + ":" + std::to_string(hop.url->port) + ":" + addr));
    CUSTOS_CURL_SET(c, CURLOPT_RESOLVE, resolve.get());
  }
  CUSTOS_CURL_SET(c, CURLOPT_URL, url_text.c_str());
  CUSTOS_CURL_SET(c, CURLOPT_PROTOCOLS_STR, "http,https");
  CUSTOS_CURL_SET(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  CUSTOS_CURL_SET(c, CURLOPT_FOLLOWLOCATION, 0L);
  CUSTOS_CURL_SET(c, CURLOPT_PROXY, "");
  CUSTOS_CURL_SET(c, CURLOPT_NOPROXY, "*");
  CUSTOS_CURL_SET(c, CURLOPT_NOSIGNAL, 1L);
  CUSTOS_CURL_SET(c, CURLOPT_NETRC, static_cast<long>(CURL_NETRC_IGNORED));
  CUSTOS_CURL_SET(c, CURLOPT_SSL_VERIFYPEER, 1L);
  CUSTOS_CURL_SET(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!opt.ca_file.empty()) {
    CUSTOS_CURL_SET(c, CURLOPT_CAINFO, opt.ca_file.c_str());
  }
  CUSTOS_CURL_SET(c, CURLOPT_PATH_AS_IS, 1L);
  CUSTOS_CURL_SET(c, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
  CUSTOS_CURL_SET(c, CURLOPT_CONNECTTIMEOUT_MS,
                  static_cast<long>(std::max<int64_t>(
                      1, std::min<int64_t>(opt.connect_timeout.count(), remaining.count()))));
  if (*hop.method != "HEAD") {  // a HEAD response announces a length it does not send
    CUSTOS_CURL_SET(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(opt.max_body_bytes));
  }
  CUSTOS_CURL_SET(c, CURLOPT_WRITEFUNCTION, &OnBody);
  CUSTOS_CURL_SET(c, CURLOPT_WRITEDATA, &state);
  CUSTOS_CURL_SET(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  CUSTOS_CURL_SET(c, CURLOPT_HEADERDATA, &state);
  CUSTOS_CURL_SET(c, CURLOPT_OPENSOCKETFUNCTION, &OnOpenSocket);
  CUSTOS_CURL_SET(c, CURLOPT_OPENSOCKETDATA, &state);
  CUSTOS_CURL_SET(c, CURLOPT_ERRORBUFFER, errbuf);

  SlistPtr headers;
  bool has_user_agent = false;
  bool has_content_type = false;
  for (const HttpHeader& h : *hop.headers) {
    has_user_agent = has_user_agent || EqualsIgnoreCase(h.name, "user-agent");
    has_content_type = has_content_type || EqualsIgnoreCase(h.name, "content-type");
    // "Name;" is libcurl's spelling of a header with an empty value.
    CUSTOS_RETURN_IF_ERROR(
        Append(&headers, h.value.empty() ? h.name + ";" : h.name + ": " + h.value));
  }
  CUSTOS_RETURN_IF_ERROR(Append(&headers, "Expect:"));  // no 100-continue round trip
  if (!has_content_type) {
    CUSTOS_RETURN_IF_ERROR(Append(&headers, "Content-Type:"));  // no form-encoding default
  }
  if (!has_user_agent) {
    CUSTOS_CURL_SET(c, CURLOPT_USERAGENT, "custos/0.1");
  }
  CUSTOS_CURL_SET(c, CURLOPT_HTTPHEADER, headers.get());

  const std::string& method = *hop.method;
  if (method == "GET") {
    CUSTOS_CURL_SET(c, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    CUSTOS_CURL_SET(c, CURLOPT_NOBODY, 1L);
  } else {
    if (!hop.body->empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      CUSTOS_CURL_SET(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(hop.body->size()));
      CUSTOS_CURL_SET(c, CURLOPT_POSTFIELDS, hop.body->data());
    }
    CUSTOS_CURL_SET(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  CURLcode rc = curl_easy_perform(c);
  HopResult out;
  curl_off_t upload = 0;
  long request_size = 0;
  long header_size = 0;
  curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &upload);
  curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &request_size);
  curl_easy_getinfo(c, CURLINFO_HEADER_SIZE, &header_size);
  out.sent = static_cast<uint64_t>(std::max<curl_off_t>(0, upload)) +
             static_cast<uint64_t>(std::max(0L, request_size));
  out.received = static_cast<uint64_t>(std::max(0L, header_size)) + state.body.size();

  const std::string where = " (" + hop.url->host + ":" + std::to_string(hop.url->port) + ")";
  if (state.address_refused) {
    return Status(Reason::kAddressNotAllowed, "connection to an address other than the pinned " +
                                                  hop.pin->text + " refused" + where);
  }
  if (state.body_too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    return Status(Reason::kPayloadTooLarge,
                  "response body exceeds " + std::to_string(opt.max_body_bytes) + " bytes" + where);
  }
  if (state.headers_too_large) {
    return Status(
        Reason::kPayloadTooLarge,
        "response headers exceed " + std::to_string(opt.max_header_bytes) + " bytes" + where);
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return Status(Reason::kEffectTimeout, "HTTP request timed out" + where);
  }
  if (rc == CURLE_COULDNT_RESOLVE_HOST) {
    return Status(Reason::kAddressNotAllowed, "address pinning failed; no lookup was made" + where);
  }
  if (rc != CURLE_OK) {
    std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    return Status(Reason::kEffectFailed, "HTTP request failed" + where + ": " + detail);
  }
  char* primary = nullptr;
  curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &primary);
  std::optional<std::string> used = primary ? CanonicalIp(primary) : std::nullopt;
  if (!used || *used != hop.pin->text) {
    return Status(Reason::kAddressNotAllowed,
                  "connected address differs from the pinned " + hop.pin->text + where);
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  out.status = static_cast<int>(status);
  out.headers = std::move(state.headers);
  out.body = std::move(state.body);
  out.primary_ip = std::move(*used);
  return out;
}

#undef CUSTOS_CURL_SET

const std::string* FindHeader(const std::vector<HttpHeader>& headers, std::string_view name) {
  for (const HttpHeader& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) {
      return &h.value;
    }
  }
  return nullptr;
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

const std::string* HttpResponse::Header(std::string_view name) const {
  return FindHeader(headers, name);
}

Result<HttpResponse> HttpSend(const HttpRequest& req, const HttpOptions& opt) {
  CUSTOS_RETURN_IF_ERROR(ValidateRequest(req));
  CUSTOS_ASSIGN_OR_RETURN(Pin pin, MakePin(req.url, req.pinned_ip, Reason::kInvalidArgument));
  EnsureCurlInitialised();
  const Clock::time_point deadline = Clock::now() + opt.total_timeout;

  Url url = req.url;
  std::string method = req.method;
  std::string body = req.body;
  std::vector<HttpHeader> headers = req.headers;
  HttpResponse response;
  for (int hop = 0;; ++hop) {
    CUSTOS_ASSIGN_OR_RETURN(HopResult r,
                            PerformHop(Hop{&url, &method, &headers, &body, &pin}, opt, deadline));
    response.bytes_sent += r.sent;
    response.bytes_received += r.received;
    const std::string* location = FindHeader(r.headers, "location");
    if (!IsRedirect(r.status) || location == nullptr || !opt.on_redirect) {
      response.status = r.status;
      response.headers = std::move(r.headers);
      response.body = std::move(r.body);
      response.primary_ip = std::move(r.primary_ip);
      response.effective_url = std::move(url);
      response.redirects = hop;
      return response;
    }
    if (hop >= opt.max_redirects) {
      return Status(Reason::kRedirectDenied,
                    "more than " + std::to_string(opt.max_redirects) + " redirects");
    }
    Result<Url> next = ResolveReference(url, *location);
    if (!next.ok()) {
      return Status(Reason::kRedirectDenied, "redirect target is not an acceptable URL: " +
                                                 std::string(next.status().message()));
    }
    if (url.scheme == "https" && next->scheme == "http" && !opt.allow_https_downgrade) {
      return Status(Reason::kRedirectDenied, "redirect from https to http refused");
    }
    CUSTOS_ASSIGN_OR_RETURN(std::string next_ip, opt.on_redirect(*next));
    CUSTOS_ASSIGN_OR_RETURN(pin, MakePin(*next, next_ip, Reason::kAddressNotAllowed));
    if ((r.status == 303 && method != "HEAD") ||
        ((r.status == 301 || r.status == 302) && method == "POST")) {
      method = "GET";
      body.clear();
      std::erase_if(headers, [](const HttpHeader& h) {
        return EqualsIgnoreCase(h.name, "content-type") ||
               EqualsIgnoreCase(h.name, "content-encoding");
      });
    }
    if (!next->SameOrigin(req.url)) {
      std::erase_if(headers,
                    [](const HttpHeader& h) { return h.sensitive || IsAlwaysSensitive(h.name); });
    }
    url = std::move(next).value();
  }
}

}  // namespace custos::effects
