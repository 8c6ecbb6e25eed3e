// `custos identity rotate` end to end (decision 011): the log verifies across the rotation with
// both keys pinned, `audit show` still opens payloads sealed before it, the kernel restarts with
// the new key, and a rotation a crash interrupted is finished (or undone) on the next start.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "custos/audit/checkpoint.h"
#include "custos/audit/key_rotation.h"
#include "custos/audit/stored_tree.h"
#include "custos/core/json.h"
#include "custos/core/reason.h"
#include "custos/crypto/key_store.h"
#include "custos/kernel/identity_rotation.h"
#include "custos/store/store.h"
#include "integration/audit_log_fixture.h"
#include "integration/cli_runner.h"
#include "testing/temp_dir.h"

namespace custos::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kSecret[] = "SEALED-BEFORE-ROTATION-4242";
constexpr char kEnv[] = "CUSTOS_PASSPHRASE=rotate-me-please";
constexpr char kPass[] = "rotate-me-please";

class IdentityRotateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    policy_ = (dir_.path() / "policy.toml").string();
    WriteText(policy_,
              "[policy]\nname = \"rotate-test\"\n\n[agents.a]\nsyscalls = [\"memory.alloc\"]\n");
    data_ = (dir_.path() / "data").string();
    // Argon2id costs ~0.5 s per key load on this VM: only the tests about encryption pay it.
    if (encrypted()) {
      ASSERT_EQ(RunCustos({"--data-dir", data_, "init"}, "", env()).code, 0);
    } else {
      ASSERT_EQ(RunCustos({"--data-dir", data_, "init", "--no-passphrase"}).code, 0);
    }
    secret_seq_ = Alloc(kSecret);
  }

  // Runs the kernel for one memory.alloc of `value`; returns its decision's seq.
  std::string Alloc(const std::string& value) {
    const std::string script = Json{{"agent", "a"},
                                    {"run", "r1"},
                                    {"kind", "memory.alloc"},
                                    {"target", "note"},
                                    {"args", {{"value", value}}}}
                                   .dump() +
                               "\n";
    CliResult r = RunCustos({"--data-dir", data_, "run", "--policy", policy_}, script, env());
    EXPECT_EQ(r.code, 0) << r.err;
    CliResult e = Run({"audit", "export"});
    std::string seq;
    std::istringstream lines(e.out);
    for (std::string line; std::getline(lines, line);) {
      const Json j = Json::parse(line);
      if (j["type"] == "decision" && j["syscall"] == "memory.alloc") {
        seq = std::to_string(j["seq"].get<int64_t>());
      }
    }
    return seq;
  }

  CliResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--data-dir", data_});
    return RunCustos(args, "", env());
  }

  std::string VerifierKey() {
    CliResult r = Run({"audit", "checkpoint", "--verifier-key"});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out;
  }

  CliResult VerifyWith(const std::string& keys) {
    const std::string file = (dir_.path() / "trusted.txt").string();
    WriteText(file, keys);
    return Run({"audit", "verify", "--trusted-keys", file});
  }

  crypto::SigningKey Load(const fs::path& p) { return crypto::KeyStore::Load(p, pass()).value(); }

  virtual bool encrypted() const { return false; }
  std::string env() const { return encrypted() ? kEnv : ""; }
  std::optional<std::string> pass() const {
    return encrypted() ? std::optional<std::string>(kPass) : std::nullopt;
  }

  TempDir dir_;
  std::string policy_, data_, secret_seq_;
};

// The same, with the identity encrypted (Argon2id + XChaCha20-Poly1305) as `custos init` makes it.
class EncryptedIdentityRotateTest : public IdentityRotateTest {
 protected:
  bool encrypted() const override { return true; }
};

TEST_F(EncryptedIdentityRotateTest, RotateThenVerifyShowAndRestartWithTheNewKey) {
  const std::string old_vkey = VerifierKey();
  const std::string old_id = Load(fs::path(data_) / "identity.key").id().hex;
  CliResult before = Run({"audit", "checkpoint"});
  ASSERT_EQ(before.code, 0) << before.err;
  const std::string old_note = (dir_.path() / "old-checkpoint").string();
  WriteText(old_note, before.out);
  CliResult rot = Run({"identity", "rotate"});
  ASSERT_EQ(rot.code, 0) << rot.out << rot.err;
  EXPECT_THAT(rot.out, HasSubstr("rotated identity custos/" + old_id + " -> custos/"));
  const std::string new_vkey = VerifierKey();
  EXPECT_NE(new_vkey, old_vkey);
  EXPECT_THAT(rot.out, HasSubstr(new_vkey));

  // The old key is kept encrypted, 0600; the new identity is encrypted too.
  const fs::path retired = fs::path(data_) / "keys" / (old_id + ".key");
  struct stat st {};
  ASSERT_EQ(::stat(retired.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Load(retired).id().hex, old_id);
  EXPECT_THAT(crypto::KeyStore::Load(fs::path(data_) / "identity.key", std::nullopt),
              ::testing::Not(::testing::Truly([](const auto& r) { return r.ok(); })));
  EXPECT_FALSE(fs::exists(fs::path(data_) / "identity.key.next"));

  // A payload sealed before the rotation still opens.
  CliResult show = Run({"audit", "show", secret_seq_});
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_THAT(show.out, HasSubstr(kSecret));

  // The kernel restarts with the new key and keeps checkpointing; its payloads open too.
  const std::string later = Alloc("SEALED-AFTER-ROTATION");
  CliResult show2 = Run({"audit", "show", later});
  ASSERT_EQ(show2.code, 0) << show2.err;
  EXPECT_THAT(show2.out, HasSubstr("SEALED-AFTER-ROTATION"));

  CliResult ok = VerifyWith(old_vkey + new_vkey);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("key rotation at entry"));
  EXPECT_THAT(ok.out,
              HasSubstr("signed by " +
                        audit::KeyName(Load(fs::path(data_) / "identity.key").verifying_key())));
  // Only the old key pinned: the rotation to an unpinned key is refused.
  CliResult only_old = VerifyWith(old_vkey);
  EXPECT_EQ(only_old.code, ExitCodeOf(Reason::kKeyError)) << only_old.out << only_old.err;
  EXPECT_THAT(only_old.out, HasSubstr("not a trusted key"));
  // Inclusion proofs of entries before the rotation use the latest (new-key) checkpoint.
  EXPECT_EQ(Run({"audit", "prove", secret_seq_}).code, 0);
  // A checkpoint the old key signed before the rotation is a prefix of today's log.
  CliResult cons = Run({"audit", "consistency", old_note});
  EXPECT_EQ(cons.code, 0) << cons.out << cons.err;
  EXPECT_THAT(cons.out, HasSubstr("\"type\": \"consistency\""));
}

TEST_F(IdentityRotateTest, RotateTwiceVerifiesWithEveryKeyPinned) {
  std::string keys = VerifierKey();
  for (int i = 0; i < 2; ++i) {
    CliResult rot = Run({"identity", "rotate"});
    ASSERT_EQ(rot.code, 0) << rot.out << rot.err;
    keys += VerifierKey();
    Alloc("x" + std::to_string(i));
  }
  CliResult ok = VerifyWith(keys);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_EQ(fs::directory_entry(fs::path(data_) / "keys").exists(), true);
  int retired = 0;
  for (const auto& e : fs::directory_iterator(fs::path(data_) / "keys")) {
    retired += e.path().extension() == ".key";
  }
  EXPECT_EQ(retired, 2);
  CliResult show = Run({"audit", "show", secret_seq_});
  EXPECT_THAT(show.out, HasSubstr(kSecret)) << show.err;
}

TEST_F(IdentityRotateTest, CheckpointSignedByTheOldKeyAfterTheRotationIsRefused) {
  const std::string old_vkey = VerifierKey();
  const crypto::SigningKey old_key = Load(fs::path(data_) / "identity.key");
  ASSERT_EQ(Run({"identity", "rotate"}).code, 0);
  const std::string keys = old_vkey + VerifierKey();
  {
    auto st = store::OpenSqliteStore(fs::path(data_) / "custos.db").value();
    const int64_t n = st->LogCount().value();
    audit::Checkpoint c;
    c.origin = audit::KeyName(old_key.verifying_key());
    c.size = static_cast<uint64_t>(n);
    c.root = audit::RootAt(audit::OpenStoredTree(st.get()).value(), c.size).value();
    ASSERT_TRUE(
        st->PutCheckpoint(
              n, audit::SignCheckpoint(c, audit::KeyName(old_key.verifying_key()), old_key).value(),
              1)
            .ok());
  }
  CliResult r = VerifyWith(keys);
  EXPECT_EQ(r.code, ExitCodeOf(Reason::kCheckpointWrongSigner)) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("checkpoint_wrong_signer"));
}

TEST_F(IdentityRotateTest, ChangedRotationStatementIsNamedBySeq) {
  ASSERT_EQ(Run({"identity", "rotate"}).code, 0);
  const std::string db = (fs::path(data_) / "custos.db").string();
  auto st = store::OpenSqliteStore(db).value();
  const int64_t seq = audit::ReadKeyChain(*st).value().rotations().at(0).seq;
  st.reset();
  ExecSql(db,
          "UPDATE log SET canonical = replace(canonical, '\"old_signature\":\"', "
          "'\"old_signature\":\"0') WHERE seq = " +
              std::to_string(seq) + ";");
  CliResult r = Run({"audit", "verify"});
  EXPECT_EQ(r.code, ExitCodeOf(Reason::kLogCorrupt)) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("FAILED at entry " + std::to_string(seq)));
}

TEST_F(EncryptedIdentityRotateTest, CrashAfterTheStatementIsFinishedOnTheNextStart) {
  const fs::path dir(data_);
  const std::string old_id = Load(dir / "identity.key").id().hex;
  kernel::RotateOptions o;
  o.passphrase = pass();
  o.stop_before_install_for_test = true;
  Result<kernel::IdentityRotation> r = kernel::RotateIdentity(dir, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(fs::exists(dir / "identity.key.next"));
  EXPECT_EQ(Load(dir / "identity.key").id().hex, old_id);
  // The next kernel start installs the new key and continues the log with it.
  Alloc("after-crash");
  EXPECT_FALSE(fs::exists(dir / "identity.key.next"));
  EXPECT_EQ(Load(dir / "identity.key").id().hex, r->new_key_id);
  EXPECT_TRUE(fs::exists(dir / "keys" / (old_id + ".key")));
  CliResult show = Run({"audit", "show", secret_seq_});
  EXPECT_THAT(show.out, HasSubstr(kSecret)) << show.err;
  EXPECT_EQ(Run({"audit", "verify"}).code, 0);
}

TEST_F(IdentityRotateTest, CrashBeforeTheStatementKeepsTheOldIdentity) {
  const fs::path dir(data_);
  const std::string old_id = Load(dir / "identity.key").id().hex;
  // A new key saved, but no statement written (killed in between).
  const crypto::SigningKey stray = crypto::SigningKey::Generate().value();
  ASSERT_TRUE(crypto::KeyStore::Save(stray, dir / "identity.key.next", pass()).ok());
  Alloc("no-rotation");
  EXPECT_FALSE(fs::exists(dir / "identity.key.next"));
  EXPECT_EQ(Load(dir / "identity.key").id().hex, old_id);
  EXPECT_EQ(Run({"audit", "verify"}).code, 0);
}

// Replay across a rotation is not supported yet (decision 011): the decisions before it were
// checked against the old token root and sealed with the old payload key, and replay runs with
// the current identity only. It must say so (skipped), never report them as the same.
TEST(IdentityRotateReplayTest, ReplayAcrossARotationSkipsWhatTheOldKeySealed) {
  TempDir dir;
  const std::string base = (dir.path() / "demo").string();
  CliResult demo = RunCustos({"--data-dir", base, "demo"});
  ASSERT_EQ(demo.code, 0) << demo.out << demo.err;
  const std::string data = base + "/data";
  CliResult rot = RunCustos({"--data-dir", data, "identity", "rotate"});
  ASSERT_EQ(rot.code, 0) << rot.out << rot.err;
  CliResult r = RunCustos({"audit", "replay", data, "--policy", base + "/policy.toml"});
  EXPECT_THAT(r.out, HasSubstr("same 0, changed 0, unknown 0, skipped 12")) << r.err;
  EXPECT_THAT(r.out, HasSubstr("does not open with this identity's payload key"));
}

TEST_F(EncryptedIdentityRotateTest, WrongPassphraseRotatesNothing) {
  CliResult r = RunCustos({"--data-dir", data_, "identity", "rotate"}, "",
                          "CUSTOS_PASSPHRASE=not-the-passphrase");
  EXPECT_EQ(r.code, ExitCodeOf(Reason::kKeyError)) << r.out << r.err;
  EXPECT_FALSE(fs::exists(fs::path(data_) / "identity.key.next"));
  EXPECT_FALSE(fs::exists(fs::path(data_) / "keys"));
}

}  // namespace
}  // namespace custos::testing
