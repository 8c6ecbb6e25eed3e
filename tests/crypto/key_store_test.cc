#include "custos/crypto/key_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "crypto/key_store_internal.h"
#include "custos/core/encoding.h"
#include "custos/core/json.h"
#include "testing/matchers.h"
#include "testing/temp_dir.h"

namespace custos::crypto {
namespace {

namespace fs = std::filesystem;
using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::custos::testing::TempDir;
using ::testing::HasSubstr;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& body, mode_t mode = 0600) {
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << body;
  }
  ASSERT_EQ(::chmod(p.c_str(), mode), 0);
}

mode_t ModeOf(const fs::path& p) {
  struct stat st;
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return st.st_mode & 07777;
}

Json ReadJson(const fs::path& p) { return Json::parse(ReadAll(p)); }

void WriteJson(const fs::path& p, const Json& j) { WriteFile(p, j.dump()); }

std::string Message(const Status& s) { return std::string(s.message()); }

// Argon2id at libsodium's minimum cost so that each round trip takes milliseconds; the default
// (MODERATE) cost is exercised once, in DefaultSaveUsesModerateArgon2idLimits.
class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ =
        internal::SetSaveKdfLimitsForTest({crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN});
  }
  void TearDown() override { internal::SetSaveKdfLimitsForTest(saved_); }

  fs::path Path(const char* name = "kernel.key") const { return dir_.path() / name; }

  TempDir dir_;
  internal::KdfLimits saved_{};
};

TEST_F(KeyStoreTest, UnencryptedRoundTrip) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::nullopt), IsOk());
  EXPECT_EQ(ModeOf(Path()), 0600u);
  Result<SigningKey> loaded = KeyStore::Load(Path(), std::nullopt);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->verifying_key().bytes(), key.verifying_key().bytes());
  Signature sig = loaded->Sign(SignContext::kTest, AsBytes("m")).value();
  EXPECT_THAT(key.verifying_key().Verify(SignContext::kTest, AsBytes("m"), sig), IsOk());
}

TEST_F(KeyStoreTest, EncryptedRoundTrip) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::string("correct horse")), IsOk());
  EXPECT_EQ(ModeOf(Path()), 0600u);
  Result<SigningKey> loaded = KeyStore::Load(Path(), std::string("correct horse"));
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->id(), key.id());
}

TEST_F(KeyStoreTest, UnencryptedFileHasDocumentedFields) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::nullopt), IsOk());
  const std::string body = ReadAll(Path());
  const Json j = Json::parse(body);
  EXPECT_EQ(body, CanonicalJson(j).value() + "\n");
  EXPECT_EQ(j["v"], 1);
  EXPECT_EQ(j["alg"], "ed25519");
  EXPECT_EQ(j["kid"], key.id().hex);
  EXPECT_EQ(j["public"], HexEncode(key.verifying_key().bytes()));
  EXPECT_EQ(j["encrypted"], false);
  EXPECT_EQ(j["seed"].get<std::string>().size(), 64u);
  EXPECT_EQ(j.size(), 6u);
}

TEST_F(KeyStoreTest, EncryptedFileHasDocumentedFieldsAndNoSeed) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::string("pw")), IsOk());
  const Json j = ReadJson(Path());
  EXPECT_EQ(j["v"], 1);
  EXPECT_EQ(j["alg"], "ed25519");
  EXPECT_EQ(j["kid"], key.id().hex);
  EXPECT_EQ(j["kdf"], "argon2id13");
  EXPECT_EQ(j["opslimit"], crypto_pwhash_OPSLIMIT_MIN);
  EXPECT_EQ(j["memlimit"], crypto_pwhash_MEMLIMIT_MIN);
  EXPECT_EQ(j["salt"].get<std::string>().size(), 2u * crypto_pwhash_SALTBYTES);
  EXPECT_EQ(Base64Decode(j["sealed"].get<std::string>())->size(), 24u + 32u + 16u);
  EXPECT_FALSE(j.contains("seed"));
  EXPECT_FALSE(j.contains("encrypted"));
  EXPECT_EQ(j.size(), 9u);
}

TEST_F(KeyStoreTest, WrongPassphraseIsKeyError) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::string("right")), IsOk());
  Result<SigningKey> r = KeyStore::Load(Path(), std::string("wrong"));
  ASSERT_THAT(r, StatusIs(Reason::kKeyError));
  EXPECT_THAT(Message(r.status()), HasSubstr("wrong passphrase"));
}

TEST_F(KeyStoreTest, EncryptedFileWithoutPassphraseIsKeyError) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::string("pw")), IsOk());
  EXPECT_THAT(KeyStore::Load(Path(), std::nullopt), StatusIs(Reason::kKeyError));
}

TEST_F(KeyStoreTest, PassphraseForUnencryptedFileIsKeyError) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::nullopt), IsOk());
  EXPECT_THAT(KeyStore::Load(Path(), std::string("pw")), StatusIs(Reason::kKeyError));
}

TEST_F(KeyStoreTest, GroupReadableFileIsRefusedNamingTheMode) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::nullopt), IsOk());
  ASSERT_EQ(::chmod(Path().c_str(), 0644), 0);
  Result<SigningKey> r = KeyStore::Load(Path(), std::nullopt);
  ASSERT_THAT(r, StatusIs(Reason::kKeyError));
  EXPECT_THAT(Message(r.status()), HasSubstr("0644"));
}

TEST_F(KeyStoreTest, AnyGroupOrOtherBitIsRefused) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::nullopt), IsOk());
  for (mode_t mode : {0640, 0604, 0620, 0602, 0610, 0601}) {
    ASSERT_EQ(::chmod(Path().c_str(), mode), 0);
    EXPECT_THAT(KeyStore::Load(Path(), std::nullopt), StatusIs(Reason::kKeyError)) << mode;
  }
  ASSERT_EQ(::chmod(Path().c_str(), 0400), 0);
  EXPECT_THAT(KeyStore::Load(Path(), std::nullopt), IsOk());
}

TEST_F(KeyStoreTest, AllZeroSeedIsRefused) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::nullopt), IsOk());
  Json j = ReadJson(Path());
  j["seed"] = std::string(64, '0');
  WriteJson(Path(), j);
  Result<SigningKey> r = KeyStore::Load(Path(), std::nullopt);
  ASSERT_THAT(r, StatusIs(Reason::kKeyError));
  EXPECT_THAT(Message(r.status()), HasSubstr("all-zero"));
}

TEST_F(KeyStoreTest, PublicKeyMismatchIsRefused) {
  SigningKey a = SigningKey::Generate().value();
  SigningKey b = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(a, Path("a.key"), std::nullopt), IsOk());
  ASSERT_THAT(KeyStore::Save(b, Path("b.key"), std::nullopt), IsOk());
  Json j = ReadJson(Path("a.key"));
  j["seed"] = ReadJson(Path("b.key"))["seed"];
  WriteJson(Path("a.key"), j);
  Result<SigningKey> r = KeyStore::Load(Path("a.key"), std::nullopt);
  ASSERT_THAT(r, StatusIs(Reason::kKeyError));
  EXPECT_THAT(Message(r.status()), HasSubstr("does not match the public key"));
}

TEST_F(KeyStoreTest, KidMismatchIsRefused) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::nullopt), IsOk());
  Json j = ReadJson(Path());
  j["kid"] = "0000000000000000";
  WriteJson(Path(), j);
  EXPECT_THAT(KeyStore::Load(Path(), std::nullopt), StatusIs(Reason::kKeyError));
}

TEST_F(KeyStoreTest, SealedSeedCannotBeMovedUnderAnotherPublicKey) {
  SigningKey a = SigningKey::Generate().value();
  SigningKey b = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(a, Path("a.key"), std::string("pw")), IsOk());
  ASSERT_THAT(KeyStore::Save(b, Path("b.key"), std::string("pw")), IsOk());
  Json j = ReadJson(Path("b.key"));
  j["public"] = HexEncode(a.verifying_key().bytes());
  j["kid"] = a.id().hex;
  WriteJson(Path("b.key"), j);
  EXPECT_THAT(KeyStore::Load(Path("b.key"), std::string("pw")), StatusIs(Reason::kKeyError));
}

TEST_F(KeyStoreTest, TamperedSealedSeedIsKeyError) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::string("pw")), IsOk());
  Json j = ReadJson(Path());
  std::vector<uint8_t> sealed = Base64Decode(j["sealed"].get<std::string>()).value();
  sealed[30] ^= 1;
  j["sealed"] = Base64Encode(sealed);
  WriteJson(Path(), j);
  EXPECT_THAT(KeyStore::Load(Path(), std::string("pw")), StatusIs(Reason::kKeyError));
}

TEST_F(KeyStoreTest, OutOfRangeKdfLimitsAreRefused) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::string("pw")), IsOk());
  Json j = ReadJson(Path());
  j["memlimit"] = uint64_t{1} << 40;
  WriteJson(Path(), j);
  EXPECT_THAT(KeyStore::Load(Path(), std::string("pw")), StatusIs(Reason::kKeyError));
}

TEST_F(KeyStoreTest, MalformedFilesAreKeyError) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path(), std::nullopt), IsOk());
  const Json good = ReadJson(Path());
  const auto expect_refused = [&](const Json& j, const char* what) {
    WriteJson(Path(), j);
    EXPECT_THAT(KeyStore::Load(Path(), std::nullopt), StatusIs(Reason::kKeyError)) << what;
  };
  Json j = good;
  j["extra"] = 1;
  expect_refused(j, "unknown field");
  j = good;
  j["v"] = 2;
  expect_refused(j, "version");
  j = good;
  j["alg"] = "rsa";
  expect_refused(j, "alg");
  j = good;
  j.erase("public");
  expect_refused(j, "missing public");
  j = good;
  j["seed"] = j["seed"].get<std::string>().substr(2);
  expect_refused(j, "short seed");
  j = good;
  j["encrypted"] = true;
  expect_refused(j, "encrypted true with seed");
  j = Json::array({1, 2});
  expect_refused(j, "not an object");
  WriteFile(Path(), "{not json");
  EXPECT_THAT(KeyStore::Load(Path(), std::nullopt), StatusIs(Reason::kKeyError));
}

TEST_F(KeyStoreTest, MissingFileIsKeyError) {
  EXPECT_THAT(KeyStore::Load(Path("absent.key"), std::nullopt), StatusIs(Reason::kKeyError));
}

TEST_F(KeyStoreTest, SymlinkIsRefused) {
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, Path("real.key"), std::nullopt), IsOk());
  fs::create_symlink(Path("real.key"), Path("link.key"));
  EXPECT_THAT(KeyStore::Load(Path("link.key"), std::nullopt), StatusIs(Reason::kKeyError));
}

TEST_F(KeyStoreTest, SaveReplacesAndLeavesNoTemporaryFiles) {
  SigningKey a = SigningKey::Generate().value();
  SigningKey b = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(a, Path(), std::nullopt), IsOk());
  ASSERT_THAT(KeyStore::Save(b, Path(), std::nullopt), IsOk());
  EXPECT_EQ(KeyStore::Load(Path(), std::nullopt)->id(), b.id());
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "kernel.key");
  }
  EXPECT_EQ(files, 1);
}

TEST_F(KeyStoreTest, SaveIntoMissingDirectoryIsIoError) {
  SigningKey key = SigningKey::Generate().value();
  EXPECT_THAT(KeyStore::Save(key, dir_.path() / "no" / "such" / "k.key", std::nullopt),
              StatusIs(Reason::kIoError));
}

TEST_F(KeyStoreTest, LoadOrCreateCreatesOnceThenLoads) {
  bool created = false;
  Result<SigningKey> first = KeyStore::LoadOrCreate(Path(), &created);
  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(created);
  EXPECT_EQ(ModeOf(Path()), 0600u);
  EXPECT_EQ(ReadJson(Path())["encrypted"], false);
  Result<SigningKey> second = KeyStore::LoadOrCreate(Path(), &created);
  ASSERT_THAT(second, IsOk());
  EXPECT_FALSE(created);
  EXPECT_EQ(second->id(), first->id());
}

TEST_F(KeyStoreTest, LoadOrCreateStillChecksAnExistingFile) {
  bool created = false;
  ASSERT_THAT(KeyStore::LoadOrCreate(Path(), &created), IsOk());
  ASSERT_EQ(::chmod(Path().c_str(), 0644), 0);
  EXPECT_THAT(KeyStore::LoadOrCreate(Path(), &created), StatusIs(Reason::kKeyError));
  EXPECT_FALSE(created);
}

TEST_F(KeyStoreTest, FromSeedForTestIsDeterministic) {
  const std::vector<uint8_t> seed(32, 0x42);
  EXPECT_EQ(KeyStore::FromSeedForTest(seed)->id(), KeyStore::FromSeedForTest(seed)->id());
}

TEST(KeyStoreDefaultCostTest, DefaultSaveUsesModerateArgon2idLimits) {
  TempDir dir;
  const fs::path path = dir.path() / "k.key";
  SigningKey key = SigningKey::Generate().value();
  ASSERT_THAT(KeyStore::Save(key, path, std::string("pw")), IsOk());
  const Json j = ReadJson(path);
  EXPECT_EQ(j["opslimit"], crypto_pwhash_OPSLIMIT_MODERATE);
  EXPECT_EQ(j["memlimit"], crypto_pwhash_MEMLIMIT_MODERATE);
  Result<SigningKey> loaded = KeyStore::Load(path, std::string("pw"));
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->id(), key.id());
}

}  // namespace
}  // namespace custos::crypto
