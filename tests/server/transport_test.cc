// custosd's transport under bad input and load: keep-alive, size caps (413/431), slow clients
// (408), the connection cap (503), malformed HTTP, abrupt disconnects, binding rules and the
// socket file, and that a blocked kernel call does not stall other connections.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <thread>
#include <vector>

#include "custos/audit/verifier.h"
#include "server/server_fixture.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;

std::string Alloc(const std::string& name) {
  return Json{
      {"run", "run-1"}, {"kind", "memory.alloc"}, {"target", name}, {"args", {{"value", 1}}}}
      .dump();
}

TEST(TransportTest, KeepAliveServesManyRequestsOnOneConnection) {
  ServerHarness s;
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  RawConnection c = s.Tcp();
  for (int i = 0; i < 20; ++i) {
    HttpReply r = c.Call("POST", "/v1/syscall", Alloc("k" + std::to_string(i)), s.Auth("worker"));
    ASSERT_EQ(r.status, 200) << i << r.body;
    EXPECT_EQ(BodyJson(r)["decision"]["verdict"], "allow");
  }
}

TEST(TransportTest, OversizedBodyIs413AndTheConnectionCloses) {
  ServerHarness s;
  server::ServerLimits l;
  l.max_body_bytes = 1024;
  ASSERT_TRUE(s.Start(s.kernel().Spec(), l));
  RawConnection c = s.Tcp();
  const std::string big = "{\"run\":\"" + std::string(4096, 'a') + "\"}";
  ASSERT_TRUE(c.Send(RawConnection::Format("POST", "/v1/syscall", big, s.Auth("worker"))));
  HttpReply r = c.Read();
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorReason(r), "payload_too_large");
  EXPECT_TRUE(c.WaitClosed(2000));
}

TEST(TransportTest, ExpectContinueIsAnsweredAndAnOversizedLengthIsRefusedUpFront) {
  ServerHarness s;
  server::ServerLimits l;
  l.max_body_bytes = 1024;
  ASSERT_TRUE(s.Start(s.kernel().Spec(), l));
  const std::string body = Alloc("expect");
  RawConnection c = s.Tcp();
  ASSERT_TRUE(c.Send("POST /v1/syscall HTTP/1.1\r\nHost: x\r\n" + s.Auth("worker") +
                     "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     "Content-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n"));
  EXPECT_THAT(c.ReadSome(2000), HasSubstr("HTTP/1.1 100 Continue"));
  ASSERT_TRUE(c.Send(body));
  HttpReply r = c.Read();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(BodyJson(r)["decision"]["verdict"], "allow");
  // A declared length over the cap is refused before any body byte is sent.
  RawConnection d = s.Tcp();
  ASSERT_TRUE(d.Send("POST /v1/syscall HTTP/1.1\r\nHost: x\r\n" + s.Auth("worker") +
                     "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     "Content-Length: 100000000\r\n\r\n"));
  r = d.Read(2000);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorReason(r), "payload_too_large");
}

TEST(TransportTest, AbsurdHeaderCountsAndSizesAre431) {
  ServerHarness s;
  server::ServerLimits l;
  l.max_headers = 16;
  l.max_header_bytes = 4096;
  ASSERT_TRUE(s.Start(s.kernel().Spec(), l));
  std::string many;
  for (int i = 0; i < 40; ++i)
    many += "X-H" + std::to_string(i) + ": v\r\n";
  RawConnection c = s.Tcp();
  ASSERT_TRUE(c.Send(RawConnection::Format("GET", "/healthz", "", many)));
  HttpReply r = c.Read();
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(ErrorReason(r), "headers_too_large");
  RawConnection d = s.Tcp();
  ASSERT_TRUE(d.Send(
      RawConnection::Format("GET", "/healthz", "", "X-Big: " + std::string(8000, 'b') + "\r\n")));
  r = d.Read();
  EXPECT_EQ(r.status, 431);
  EXPECT_TRUE(d.WaitClosed(2000));
}

TEST(TransportTest, SlowlorisGets408AndIsClosedWhileOthersAreServed) {
  ServerHarness s;
  server::ServerLimits l;
  l.header_timeout_ms = 300;
  ASSERT_TRUE(s.Start(s.kernel().Spec(), l));
  RawConnection slow = s.Tcp();
  ASSERT_TRUE(slow.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));  // never finishes the headers
  EXPECT_EQ(s.Call("", "GET", "/healthz").status, 200);
  HttpReply r = slow.Read(3000);
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(ErrorReason(r), "request_timeout");
  EXPECT_TRUE(slow.WaitClosed(2000));
  // A connection that sends nothing at all is closed without a response.
  RawConnection idle = s.Tcp();
  EXPECT_TRUE(idle.WaitClosed(3000));
}

TEST(TransportTest, ConnectionCapAnswers503ThenRecovers) {
  ServerHarness s;
  server::ServerLimits l;
  l.max_connections = 3;
  ASSERT_TRUE(s.Start(s.kernel().Spec(), l));
  std::vector<RawConnection> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(s.Tcp());
    ASSERT_EQ(held.back().Call("GET", "/healthz").status, 200);  // each is accepted and counted
  }
  RawConnection extra = s.Tcp();
  HttpReply r = extra.Read(3000);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorReason(r), "unavailable");
  held.clear();
  // Once they are gone the cap frees up.
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    status = s.Call("", "GET", "/healthz").status;
    if (status != 200)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(status, 200);
  EXPECT_THAT(s.Call("worker", "GET", "/metrics").body,
              ::testing::ContainsRegex("custos_connections_rejected_total [1-9]"));
}

TEST(TransportTest, GarbageIs400MalformedHttp) {
  ServerHarness s;
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  RawConnection c = s.Tcp();
  ASSERT_TRUE(c.Send("THIS IS NOT HTTP\r\n\r\n"));
  HttpReply r = c.Read();
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorReason(r), "malformed_http");
}

TEST(TransportTest, AbruptDisconnectsMidRequestLeaveTheDaemonServingAndTheLogIntact) {
  ServerHarness s;
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  for (int i = 0; i < 20; ++i) {
    RawConnection c = s.Tcp();
    const std::string req =
        RawConnection::Format("POST", "/v1/syscall", Alloc("cut"), s.Auth("worker"));
    ASSERT_TRUE(c.Send(req.substr(0, req.size() - 1 - static_cast<size_t>(i % 7) * 5)));
    // Closed with the body incomplete.
  }
  // Completed requests whose client vanished before reading the answer.
  for (int i = 0; i < 10; ++i) {
    RawConnection c = s.Tcp();
    ASSERT_TRUE(
        c.Send(RawConnection::Format("POST", "/v1/syscall", Alloc("gone"), s.Auth("worker"))));
  }
  HttpReply r = s.Call("worker", "POST", "/v1/syscall", Alloc("after"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(BodyJson(r)["decision"]["verdict"], "allow");
  ASSERT_TRUE(s.kernel().kernel().Commit().ok());
  const audit::VerifyReport v = audit::VerifyStore(s.kernel().kernel().store());
  EXPECT_TRUE(v.status.ok()) << v.status;
  // No half-read request reached the kernel: only whole ones were decided.
  int cut = 0;
  for (const audit::LogEntry& e : s.kernel().Log())
    cut += e.target == "cut" ? 1 : 0;
  EXPECT_EQ(cut, 0);
}

TEST(TransportTest, ABlockedKernelCallDoesNotStallOtherConnections) {
  ServerHarness s;
  PolicySpec spec = s.kernel().Spec();
  spec.extra =
      "[[approvals]]\nid = \"wait\"\nsyscall = [\"memory.alloc\"]\ntimeout_ms = 800\n"
      "message = \"parks a worker\"\n";
  ASSERT_TRUE(s.Start(spec, {}, /*workers=*/2));
  std::vector<RawConnection> parked;
  parked.push_back(s.Tcp());
  ASSERT_TRUE(parked.back().Send(
      RawConnection::Format("POST", "/v1/syscall", Alloc("p"), s.Auth("worker"))));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(s.Call("", "GET", "/healthz").status, 200);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_LT(ms, 600) << "health checks waited behind a parked kernel call";
}

TEST(TransportTest, ConcurrentClientsAreAllDecidedAndRecorded) {
  ServerHarness s;
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  constexpr int kThreads = 8, kEach = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      RawConnection c = t % 2 == 0 ? s.Tcp() : s.Unix();
      for (int i = 0; i < kEach; ++i) {
        HttpReply r =
            c.Call("POST", "/v1/syscall", Alloc("c" + std::to_string(t) + "_" + std::to_string(i)),
                   t % 2 == 0 ? s.Auth("worker") : "");
        if (r.status == 200 && BodyJson(r)["decision"]["verdict"] == "allow")
          ok.fetch_add(1);
      }
    });
  }
  for (std::thread& t : ts)
    t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  ASSERT_TRUE(s.kernel().kernel().Commit().ok());
  const audit::VerifyReport v = audit::VerifyStore(s.kernel().kernel().store());
  EXPECT_TRUE(v.status.ok()) << v.status;
  EXPECT_GE(v.entries, kThreads * kEach * 2);  // decision + outcome each
}

TEST(TransportTest, NonLoopbackBindIsRefused) {
  ServerHarness s;
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  server::ServerOptions o;
  o.listen = "0.0.0.0:0";
  Result<std::unique_ptr<server::Server>> r = server::Server::Start(&s.api(), &s.metrics(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), Reason::kInsecureBind);
  o.listen = "127.0.0.1";
  EXPECT_EQ(server::Server::Start(&s.api(), &s.metrics(), o).status().reason(),
            Reason::kInvalidArgument);
}

TEST(TransportTest, SocketFileIs0600AndALiveOneIsNotStolenButAStaleOneIsReplaced) {
  ServerHarness s;
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  struct stat st {};
  ASSERT_EQ(::stat(s.server().socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  server::ServerOptions o;
  o.socket = s.server().socket_path();
  Result<std::unique_ptr<server::Server>> again = server::Server::Start(&s.api(), &s.metrics(), o);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().reason(), Reason::kAlreadyExists);
  // A stale socket: bound by a process that is gone (here: a closed listener).
  const std::filesystem::path stale = s.kernel().root() / "stale.sock";
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, stale.c_str(), sizeof(a.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ::close(fd);
  }
  o.socket = stale;
  Result<std::unique_ptr<server::Server>> fresh = server::Server::Start(&s.api(), &s.metrics(), o);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  RawConnection c = RawConnection::Unix(stale.string());
  EXPECT_EQ(c.Call("GET", "/healthz").status, 200);
}

TEST(AuthenticatorTest, UnmappedPeerAndBadKeyFileAreRefused) {
  TempDir dir;
  server::ServerConfig config;
  config.peers = {{1234, "worker"}};
  config.admins = {"ops"};
  Result<server::Authenticator> a = server::Authenticator::Load(dir.path(), config);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->FromPeer({999, 1}).status().reason(), Reason::kUnauthenticated);
  Result<server::Identity> id = a->FromPeer({1234, 77});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->agent, "worker");
  EXPECT_FALSE(id->admin);
  EXPECT_EQ(id->via, "peer uid=1234 pid=77");
  Result<std::string> key = server::AddApiKey(dir.path(), "ops");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(server::AddApiKey(dir.path(), "bad name").status().reason(), Reason::kInvalidArgument);
  a = server::Authenticator::Load(dir.path(), config);
  ASSERT_TRUE(a.ok());
  id = a->FromAuthorization("Bearer " + *key);
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(id->admin);
  EXPECT_THAT(id->via, ::testing::Not(HasSubstr(*key)));  // the key never leaves
  // Only the hash is at rest.
  EXPECT_THAT(ReadFileIfExists(dir.path() / "api_keys").value_or(""),
              ::testing::Not(HasSubstr(*key)));
  ::chmod((dir.path() / "api_keys").c_str(), 0644);
  EXPECT_EQ(server::Authenticator::Load(dir.path(), config).status().reason(), Reason::kKeyError);
}

}  // namespace
}  // namespace custos::testing
