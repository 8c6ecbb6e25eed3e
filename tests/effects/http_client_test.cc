#include "custos/effects/http_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "testing/fake_http_server.h"
#include "testing/matchers.h"

namespace custos::effects {
namespace {

using ::custos::testing::CannedResponse;
using ::custos::testing::FakeHttpServer;
using ::custos::testing::HttpExchange;
using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// The routes the client tests use, one canned response per path:
//   /ok               200 "hello"
//   /echo             200, body = method, then each header line, a blank line, then the body
//   /redirect/N       302 to /redirect/N-1; /redirect/0 is 200 "done"
//   /to?u=URL         302 to URL (taken verbatim from the query)
//   /see-other        303 to /echo;  /temporary 307 to /echo;  /found 302 to /echo
//   /slow             waits (until the server stops) before answering
//   /huge             200 with a 1 MiB body and Content-Length
//   /stream           200 with a 1 MiB body, no Content-Length (read to close)
//   /big-headers      200 with 200 KiB of headers
//   anything else     404
CannedResponse ClientTestRoutes(const HttpExchange& req) {
  auto reply = [](int status, std::string headers, std::string body) {
    CannedResponse r;
    r.status = status;
    r.headers = std::move(headers);
    r.body = std::move(body);
    return r;
  };
  const std::string& t = req.target;
  if (t == "/ok")
    return reply(200, "", "hello");
  if (t == "/echo")
    return reply(200, "",
                 req.method + "\n" + req.head.substr(req.head.find("\r\n") + 2) + "\n" + req.body);
  if (t.starts_with("/redirect/")) {
    const int n = std::stoi(t.substr(10));
    return n == 0 ? reply(200, "", "done")
                  : reply(302, "Location: /redirect/" + std::to_string(n - 1) + "\r\n", "");
  }
  if (t.starts_with("/to?u="))
    return reply(302, "Location: " + t.substr(6) + "\r\n", "");
  if (t == "/see-other")
    return reply(303, "Location: /echo\r\n", "");
  if (t == "/temporary")
    return reply(307, "Location: /echo\r\n", "");
  if (t == "/found")
    return reply(302, "Location: /echo\r\n", "");
  if (t == "/slow") {
    CannedResponse r = reply(200, "", "late");
    r.hold_until_stop = true;
    return r;
  }
  if (t == "/huge")
    return reply(200, "", std::string(1 << 20, 'h'));
  if (t == "/stream") {
    CannedResponse r = reply(200, "", std::string(1 << 20, 's'));
    r.content_length = false;
    return r;
  }
  if (t == "/big-headers") {
    std::string headers;
    for (int i = 0; i < 2000; ++i)
      headers += "X-Filler-" + std::to_string(i) + ": " + std::string(90, 'f') + "\r\n";
    return reply(200, headers, "ok");
  }
  return reply(404, "", "not found");
}

class HttpSendTest : public ::testing::Test {
 protected:
  std::string Base(std::string_view host = "rebind.test") {
    return "http://" + std::string(host) + ":" + std::to_string(server_.port());
  }
  HttpRequest Get(const std::string& path, std::string_view host = "rebind.test") {
    HttpRequest req;
    req.url = ParseUrl(Base(host) + path).value();
    req.pinned_ip = "127.0.0.1";
    return req;
  }
  // A hook that approves every hop, pins it to loopback and records what it saw.
  HttpOptions Following() {
    HttpOptions opt;
    opt.on_redirect = [this](const Url& next) -> Result<std::string> {
      hops_.push_back(next.ToString());
      return std::string("127.0.0.1");
    };
    return opt;
  }

  FakeHttpServer server_{ClientTestRoutes};
  std::vector<std::string> hops_;
};

TEST_F(HttpSendTest, PinnedNameIsServedWithoutDns) {
  // rebind.test does not resolve anywhere: success proves no lookup happened.
  auto r = HttpSend(Get("/ok"), HttpOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->primary_ip, "127.0.0.1");
  EXPECT_EQ(r->redirects, 0);
  EXPECT_EQ(r->effective_url.path_and_query, "/ok");
  EXPECT_GT(r->bytes_sent, 0u);
  EXPECT_GT(r->bytes_received, 5u);
  ASSERT_NE(r->Header("content-length"), nullptr);
  EXPECT_EQ(*r->Header("Content-Length"), "5");
  auto seen = server_.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_THAT(seen[0].head, HasSubstr("Host: rebind.test:" + std::to_string(server_.port())));
  EXPECT_THAT(seen[0].head, HasSubstr("User-Agent: custos/"));
}

TEST_F(HttpSendTest, PinWinsOverTheResolver) {
  // "localhost" would resolve to 127.0.0.1, where the server listens; the pin says 127.0.0.2.
  HttpRequest req = Get("/ok", "localhost");
  req.pinned_ip = "127.0.0.2";
  auto r = HttpSend(req, HttpOptions{});
  if (r.ok()) {
    GTEST_SKIP() << "127.0.0.2 reaches the 127.0.0.1 listener on this host";
  }
  EXPECT_THAT(r, StatusIs(Reason::kEffectFailed));
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(HttpSendTest, IpLiteralHostMustEqualThePin) {
  HttpRequest req = Get("/ok", "127.0.0.1");
  req.pinned_ip = "10.0.0.1";
  EXPECT_THAT(HttpSend(req, HttpOptions{}), StatusIs(Reason::kInvalidArgument));
  req.pinned_ip = "127.0.0.1";
  EXPECT_THAT(HttpSend(req, HttpOptions{}), IsOk());
}

TEST_F(HttpSendTest, PinMustBeAnAddress) {
  HttpRequest req = Get("/ok");
  req.pinned_ip = "localhost";
  EXPECT_THAT(HttpSend(req, HttpOptions{}), StatusIs(Reason::kInvalidArgument));
  req.pinned_ip = "";
  EXPECT_THAT(HttpSend(req, HttpOptions{}), StatusIs(Reason::kInvalidArgument));
}

TEST_F(HttpSendTest, RedirectWithoutHookIsReturnedNotFollowed) {
  auto r = HttpSend(Get("/redirect/2"), HttpOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->status, 302);
  ASSERT_NE(r->Header("location"), nullptr);
  EXPECT_EQ(*r->Header("location"), "/redirect/1");
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(HttpSendTest, RedirectChainIsFollowedThroughTheHook) {
  auto r = HttpSend(Get("/redirect/3"), Following());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(r->redirects, 3);
  EXPECT_EQ(r->effective_url.path_and_query, "/redirect/0");
  EXPECT_EQ(hops_, (std::vector<std::string>{Base() + "/redirect/2", Base() + "/redirect/1",
                                             Base() + "/redirect/0"}));
}

TEST_F(HttpSendTest, HookRefusalEndsTheChainWithItsStatus) {
  HttpOptions opt;
  opt.on_redirect = [](const Url&) -> Result<std::string> {
    return Status(Reason::kHostNotAllowed, "not on net.connect");
  };
  EXPECT_THAT(HttpSend(Get("/redirect/1"), opt), StatusIs(Reason::kHostNotAllowed));
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(HttpSendTest, HookPinningAnotherAddressForALiteralIsRefused) {
  HttpRequest req = Get("/to?u=http://127.0.0.1:" + std::to_string(server_.port()) + "/ok");
  HttpOptions opt;
  opt.on_redirect = [](const Url&) -> Result<std::string> { return std::string("10.1.1.1"); };
  EXPECT_THAT(HttpSend(req, opt), StatusIs(Reason::kAddressNotAllowed));
}

TEST_F(HttpSendTest, TooManyRedirectsIsRedirectDenied) {
  HttpOptions opt = Following();
  opt.max_redirects = 2;
  EXPECT_THAT(HttpSend(Get("/redirect/5"), opt), StatusIs(Reason::kRedirectDenied));
  EXPECT_EQ(hops_.size(), 2u);
}

TEST_F(HttpSendTest, RedirectToAnotherSchemeIsRedirectDenied) {
  EXPECT_THAT(HttpSend(Get("/to?u=ftp://rebind.test/x"), Following()),
              StatusIs(Reason::kRedirectDenied));
  EXPECT_THAT(HttpSend(Get("/to?u=file:///etc/passwd"), Following()),
              StatusIs(Reason::kRedirectDenied));
  EXPECT_THAT(HttpSend(Get("/to?u=http://user@rebind.test/"), Following()),
              StatusIs(Reason::kRedirectDenied));
  EXPECT_TRUE(hops_.empty());
}

TEST_F(HttpSendTest, CrossOriginRedirectDropsCredentials) {
  HttpRequest req = Get("/to?u=http://other.test:" + std::to_string(server_.port()) + "/echo");
  req.headers = {{"Authorization", "Bearer tok-123", false},
                 {"X-Api-Key", "key-456", true},
                 {"X-Plain", "visible", false}};
  auto r = HttpSend(req, Following());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->effective_url.host, "other.test");
  EXPECT_THAT(r->body, HasSubstr("Host: other.test:"));
  EXPECT_THAT(r->body, HasSubstr("X-Plain: visible"));
  EXPECT_THAT(r->body, Not(HasSubstr("tok-123")));
  EXPECT_THAT(r->body, Not(HasSubstr("key-456")));
  // The first hop did carry them.
  EXPECT_THAT(server_.requests()[0].head, HasSubstr("Bearer tok-123"));
}

TEST_F(HttpSendTest, SameOriginRedirectKeepsCredentials) {
  HttpRequest req = Get("/found");
  req.headers = {{"Authorization", "Bearer tok-123", false}, {"X-Api-Key", "key-456", true}};
  auto r = HttpSend(req, Following());
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->body, HasSubstr("Bearer tok-123"));
  EXPECT_THAT(r->body, HasSubstr("key-456"));
}

TEST_F(HttpSendTest, SeeOtherAfterPostContinuesAsGetWithoutBody) {
  HttpRequest req = Get("/see-other");
  req.method = "POST";
  req.body = "payload";
  req.headers = {{"Content-Type", "text/plain", false}};
  auto r = HttpSend(req, Following());
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->body, ::testing::StartsWith("GET\n"));
  EXPECT_THAT(r->body, Not(HasSubstr("payload")));
  EXPECT_THAT(r->body, Not(HasSubstr("Content-Type")));
  EXPECT_EQ(server_.requests()[0].body, "payload");
}

TEST_F(HttpSendTest, TemporaryRedirectResendsMethodAndBody) {
  HttpRequest req = Get("/temporary");
  req.method = "PUT";
  req.body = "payload";
  auto r = HttpSend(req, Following());
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->body, ::testing::StartsWith("PUT\n"));
  EXPECT_THAT(r->body, HasSubstr("payload"));
}

TEST_F(HttpSendTest, PostSendsTheBodyWithoutAFormContentType) {
  HttpRequest req = Get("/echo");
  req.method = "POST";
  req.body = "{\"a\":1}";
  auto r = HttpSend(req, HttpOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->body, ::testing::StartsWith("POST\n"));
  EXPECT_THAT(r->body, HasSubstr("{\"a\":1}"));
  EXPECT_THAT(r->body, Not(HasSubstr("x-www-form-urlencoded")));
  EXPECT_THAT(r->body, Not(HasSubstr("Expect:")));
  EXPECT_GE(r->bytes_sent, req.body.size());
}

TEST_F(HttpSendTest, HeadAndDeleteWork) {
  HttpRequest head = Get("/ok");
  head.method = "HEAD";
  auto h = HttpSend(head, HttpOptions{});
  ASSERT_THAT(h, IsOk());
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->body, "");
  HttpRequest del = Get("/echo");
  del.method = "DELETE";
  auto d = HttpSend(del, HttpOptions{});
  ASSERT_THAT(d, IsOk());
  EXPECT_THAT(d->body, ::testing::StartsWith("DELETE\n"));
}

TEST_F(HttpSendTest, HttpErrorStatusIsNotAnError) {
  auto r = HttpSend(Get("/missing"), HttpOptions{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->status, 404);
}

TEST_F(HttpSendTest, SlowResponseIsEffectTimeout) {
  HttpOptions opt;
  opt.total_timeout = std::chrono::milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(HttpSend(Get("/slow"), opt), StatusIs(Reason::kEffectTimeout));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(HttpSendTest, BodyOverTheCapIsPayloadTooLarge) {
  HttpOptions opt;
  opt.max_body_bytes = 1000;
  EXPECT_THAT(HttpSend(Get("/huge"), opt), StatusIs(Reason::kPayloadTooLarge));
  EXPECT_THAT(HttpSend(Get("/stream"), opt), StatusIs(Reason::kPayloadTooLarge));
  opt.max_body_bytes = 1 << 20;
  auto r = HttpSend(Get("/stream"), opt);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->body.size(), size_t{1} << 20);
}

TEST_F(HttpSendTest, HeadOfALargeResourceIsNotOverTheCap) {
  HttpRequest head = Get("/huge");
  head.method = "HEAD";
  HttpOptions opt;
  opt.max_body_bytes = 1000;
  auto r = HttpSend(head, opt);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "");
}

TEST_F(HttpSendTest, HeadersOverTheCapArePayloadTooLarge) {
  EXPECT_THAT(HttpSend(Get("/big-headers"), HttpOptions{}), StatusIs(Reason::kPayloadTooLarge));
}

TEST_F(HttpSendTest, RejectsRequestsThatCouldSmuggleOrReroute) {
  HttpRequest host = Get("/ok");
  host.headers = {{"Host", "internal.corp", false}};
  EXPECT_THAT(HttpSend(host, HttpOptions{}), StatusIs(Reason::kInvalidArgument));
  HttpRequest te = Get("/ok");
  te.headers = {{"transfer-encoding", "chunked", false}};
  EXPECT_THAT(HttpSend(te, HttpOptions{}), StatusIs(Reason::kInvalidArgument));
  HttpRequest crlf = Get("/ok");
  crlf.headers = {{"X-A", "v\r\nHost: evil", false}};
  EXPECT_THAT(HttpSend(crlf, HttpOptions{}), StatusIs(Reason::kInvalidArgument));
  HttpRequest name = Get("/ok");
  name.headers = {{"Bad Name", "v", false}};
  EXPECT_THAT(HttpSend(name, HttpOptions{}), StatusIs(Reason::kInvalidArgument));
  HttpRequest method = Get("/ok");
  method.method = "CONNECT";
  EXPECT_THAT(HttpSend(method, HttpOptions{}), StatusIs(Reason::kInvalidArgument));
  HttpRequest body = Get("/ok");
  body.body = "x";
  EXPECT_THAT(HttpSend(body, HttpOptions{}), StatusIs(Reason::kInvalidArgument));
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(HttpSendTest, ConnectionRefusedIsEffectFailed) {
  HttpRequest req;
  req.url = ParseUrl("http://closed.test:1/").value();
  req.pinned_ip = "127.0.0.1";
  EXPECT_THAT(HttpSend(req, HttpOptions{}), StatusIs(Reason::kEffectFailed));
}

}  // namespace
}  // namespace custos::effects
