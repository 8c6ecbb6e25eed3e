// custosd over TLS (decision 021): a self-signed certificate made in the test, a client that
// verifies it, and the transport's failure modes on a TLS port (plain HTTP, handshake garbage,
// slow handshakes), plus the binding rule for non-loopback addresses and the key-file checks.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "custos/server/server_config.h"
#include "server/server_fixture.h"
#include "testing/temp_dir.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;

std::string Alloc(const std::string& name) {
  return Json{
      {"run", "run-1"}, {"kind", "memory.alloc"}, {"target", name}, {"args", {{"value", 1}}}}
      .dump();
}

TEST(TlsTest, SyscallsOverVerifiedTls13WithKeepAlive) {
  ServerHarness s;
  s.UseTls();
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  RawConnection c = RawConnection::Tcp(s.server().tcp_port());
  std::string version;
  ASSERT_EQ(StartTls(c, s.ca_file(), &version), "");
  EXPECT_EQ(version, "TLSv1.3");
  for (int i = 0; i < 5; ++i) {
    HttpReply r = c.Call("POST", "/v1/syscall", Alloc("t" + std::to_string(i)), s.Auth("worker"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(BodyJson(r)["decision"]["verdict"], "allow");
  }
  // Credentials are still required over TLS.
  EXPECT_EQ(c.Call("GET", "/v1/budgets").status, 401);
}

TEST(TlsTest, Tls12StillWorks) {
  ServerHarness s;
  s.UseTls();
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  RawConnection c = RawConnection::Tcp(s.server().tcp_port());
  std::string version;
  ASSERT_EQ(StartTls(c, s.ca_file(), &version, TLS1_2_VERSION), "");
  EXPECT_EQ(version, "TLSv1.2");
  EXPECT_EQ(c.Call("GET", "/healthz").status, 200);
}

TEST(TlsTest, AClientThatDoesNotTrustTheCertificateFailsTheHandshake) {
  ServerHarness s;
  s.UseTls();
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  // Another self-signed certificate as the only trusted CA.
  ASSERT_TRUE(MakeSelfSignedCert(s.kernel().root() / "other"));
  RawConnection c = RawConnection::Tcp(s.server().tcp_port());
  EXPECT_THAT(StartTls(c, s.kernel().root() / "other" / "cert.pem"),
              HasSubstr("certificate verify failed"));
  EXPECT_EQ(s.Call("", "GET", "/healthz").status, 200);  // the server is fine
}

TEST(TlsTest, PlainHttpToTheTlsPortIsAPlain400AndCloses) {
  ServerHarness s;
  s.UseTls();
  ASSERT_TRUE(s.Start(s.kernel().Spec()));
  RawConnection c = s.PlainTcp();
  ASSERT_TRUE(c.Send(RawConnection::Format("GET", "/healthz")));
  HttpReply r = c.Read(3000);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorReason(r), "malformed_http");
  EXPECT_THAT(r.body, HasSubstr("TLS"));
  EXPECT_TRUE(c.WaitClosed(2000));
  EXPECT_EQ(s.Call("", "GET", "/healthz").status, 200);
}

TEST(TlsTest, HandshakeGarbageClosesTheConnectionAndTheServerKeepsServing) {
  ServerHarness s;
  s.UseTls();
  server::ServerLimits l;
  l.header_timeout_ms = 1000;  // the truncated hello waits for the rest until then
  ASSERT_TRUE(s.Start(s.kernel().Spec(), l));
  const std::string garbage[] = {
      std::string("\x16\x03\x01\xff\xff", 5) + std::string(64, '\x01'),  // oversized record
      std::string("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", 10),       // truncated ClientHello
      std::string(2048, '\0'), std::string("\x80\x80\x01\x03\x01", 5),   // SSLv2-style hello
  };
  for (const std::string& g : garbage) {
    RawConnection c = s.PlainTcp();
    ASSERT_TRUE(c.Send(g));
    EXPECT_TRUE(c.WaitClosed(3000)) << "garbage of " << g.size() << " bytes";
  }
  EXPECT_EQ(s.Call("", "GET", "/healthz").status, 200);
  EXPECT_THAT(s.metrics().Render(true, 0), HasSubstr("custos_tls_handshake_failures_total 4"));
}

TEST(TlsTest, TheHeaderTimeoutAppliesToTheHandshake) {
  ServerHarness s;
  s.UseTls();
  server::ServerLimits l;
  l.header_timeout_ms = 300;
  ASSERT_TRUE(s.Start(s.kernel().Spec(), l));
  const auto t0 = std::chrono::steady_clock::now();
  RawConnection silent = s.PlainTcp();
  RawConnection trickle = s.PlainTcp();
  ASSERT_TRUE(trickle.Send(std::string("\x16\x03\x01", 3)));  // a record header, then nothing
  EXPECT_TRUE(silent.WaitClosed(3000));
  EXPECT_TRUE(trickle.WaitClosed(3000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(s.Call("", "GET", "/healthz").status, 200);
}

TEST(TlsTest, NonLoopbackBindNeedsTlsAndATcpAuthMethod) {
  using server::CheckListenAddress;
  EXPECT_TRUE(CheckListenAddress("127.0.0.1:7300", false, false).ok());
  EXPECT_TRUE(CheckListenAddress("[::1]:7300", false, false).ok());
  EXPECT_TRUE(CheckListenAddress("127.0.0.1:7300", true, false).ok());
  Status s = CheckListenAddress("0.0.0.0:7300", false, true);
  EXPECT_EQ(s.reason(), Reason::kInsecureBind);
  EXPECT_THAT(s.message(), HasSubstr("without TLS"));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("auth method")));
  s = CheckListenAddress("10.1.2.3:7300", true, false);
  EXPECT_EQ(s.reason(), Reason::kInsecureBind);
  EXPECT_THAT(s.message(), HasSubstr("without a TCP auth method"));
  s = CheckListenAddress("[::]:7300", false, false);
  EXPECT_EQ(s.reason(), Reason::kInsecureBind);
  EXPECT_THAT(s.message(), HasSubstr("TLS ([server.tls]"));
  EXPECT_THAT(s.message(), HasSubstr("and a TCP auth method"));
  EXPECT_TRUE(CheckListenAddress("0.0.0.0:7300", true, true).ok());
  EXPECT_EQ(CheckListenAddress("0.0.0.0", true, true).reason(), Reason::kInvalidArgument);

  // Server::Start applies the same rule before binding anything.
  ServerHarness h;
  ASSERT_TRUE(h.Start(h.kernel().Spec()));
  server::ServerOptions o;
  o.listen = "0.0.0.0:0";
  o.tcp_auth = true;
  EXPECT_EQ(server::Server::Start(&h.api(), &h.metrics(), o).status().reason(),
            Reason::kInsecureBind);
}

TEST(TlsTest, TheKeyFileMustBeOwnerOnlyAndMatchTheCertificate) {
  ServerHarness h;
  ASSERT_TRUE(h.Start(h.kernel().Spec()));
  const auto dir = h.kernel().root() / "tls-a";
  const auto other = h.kernel().root() / "tls-b";
  ASSERT_TRUE(MakeSelfSignedCert(dir));
  ASSERT_TRUE(MakeSelfSignedCert(other));
  server::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.tls_cert = dir / "cert.pem";
  o.tls_key = dir / "key.pem";
  ASSERT_EQ(::chmod(o.tls_key.c_str(), 0640), 0);
  Status s = server::Server::Start(&h.api(), &h.metrics(), o).status();
  EXPECT_EQ(s.reason(), Reason::kTlsConfigError);
  EXPECT_THAT(s.message(), HasSubstr("mode 0640"));
  EXPECT_EQ(s.at(), o.tls_key.string());
  ASSERT_EQ(::chmod(o.tls_key.c_str(), 0600), 0);
  o.tls_key = other / "key.pem";
  s = server::Server::Start(&h.api(), &h.metrics(), o).status();
  EXPECT_EQ(s.reason(), Reason::kTlsConfigError);
  EXPECT_THAT(s.message(), HasSubstr("mismatch")) << s;
  o.tls_key = dir / "missing.pem";
  EXPECT_EQ(server::Server::Start(&h.api(), &h.metrics(), o).status().reason(),
            Reason::kTlsConfigError);
  o.tls_key = dir / "cert.pem";  // a certificate is not a key
  ASSERT_EQ(::chmod(o.tls_key.c_str(), 0600), 0);
  s = server::Server::Start(&h.api(), &h.metrics(), o).status();
  EXPECT_EQ(s.reason(), Reason::kTlsConfigError);
  o.tls_key.clear();
  EXPECT_EQ(server::Server::Start(&h.api(), &h.metrics(), o).status().reason(),
            Reason::kInvalidArgument);
}

TEST(TlsTest, ConfigTlsTableNeedsCertAndKeyAndResolvesRelativePaths) {
  TempDir d;
  {
    std::ofstream(d.path() / "config.toml") << "[server.tls]\ncert = \"tls/cert.pem\"\n"
                                               "key = \"/etc/custos/key.pem\"\n";
  }
  Result<server::ServerConfig> c = server::LoadServerConfig(d.path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls_cert, d.path() / "tls/cert.pem");
  EXPECT_EQ(c->tls_key, "/etc/custos/key.pem");
  { std::ofstream(d.path() / "config.toml") << "[server.tls]\ncert = \"c.pem\"\n"; }
  c = server::LoadServerConfig(d.path());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("key is missing"));
  { std::ofstream(d.path() / "config.toml") << "[server.tls]\ncert = \"c.pem\"\nca = \"x\"\n"; }
  c = server::LoadServerConfig(d.path());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().reason(), Reason::kPolicyUnknownKey);
}

}  // namespace
}  // namespace custos::testing
