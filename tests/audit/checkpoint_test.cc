// C2SP tlog-checkpoint / signed-note encoding, signing and verification of flight-log
// checkpoints, including cosignatures and malformed or forged notes.

#include "custos/audit/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <random>
#include <string>
#include <vector>

#include "custos/core/encoding.h"
#include "custos/crypto/key_store.h"
#include "testing/matchers.h"

namespace custos::audit {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

crypto::SigningKey KeyFromByte(uint8_t b) {
  std::vector<uint8_t> seed(32);
  for (size_t i = 0; i < seed.size(); ++i) {
    seed[i] = static_cast<uint8_t>(b + i);
  }
  return crypto::KeyStore::FromSeedForTest(seed).value();
}

Checkpoint TestCheckpoint() {
  Checkpoint c;
  c.origin = "custos/0123456789abcdef";
  c.size = 5;
  c.root = MerkleLeafHash("root");
  return c;
}

struct Fixture {
  crypto::SigningKey log_key = KeyFromByte(1);
  crypto::SigningKey witness_key = KeyFromByte(100);
  NoteVerifier log = MakeNoteVerifier("custos/0123456789abcdef", log_key.verifying_key()).value();
  NoteVerifier witness = MakeNoteVerifier("witness.example", witness_key.verifying_key()).value();
  std::string note = SignCheckpoint(TestCheckpoint(), log.name, log_key).value();
};

TEST(CheckpointTest, BodyIsOriginSizeAndBase64Root) {
  Checkpoint c = TestCheckpoint();
  Result<std::string> body = CheckpointBody(c);
  ASSERT_THAT(body, IsOk());
  EXPECT_EQ(*body, "custos/0123456789abcdef\n5\n" + Base64Encode(c.root.bytes) + "\n");
  Result<Checkpoint> back = ParseCheckpointBody(*body);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(*back, c);
  c.extensions = {"ext one", "ext two"};
  body = CheckpointBody(c);
  ASSERT_THAT(body, IsOk());
  EXPECT_THAT(*body, HasSubstr("\next one\next two\n"));
  EXPECT_EQ(ParseCheckpointBody(*body).value(), c);
}

TEST(CheckpointTest, KeyHashIsTheSignedNoteEd25519Hash) {
  Fixture f;
  std::string input = f.log.name + "\n";
  input.push_back('\x01');
  input.append(reinterpret_cast<const char*>(f.log_key.verifying_key().bytes().data()), 32);
  const crypto::Digest d = crypto::Sha256(input);
  EXPECT_TRUE(std::equal(f.log.key_hash.begin(), f.log.key_hash.end(), d.bytes.begin()));
  const std::string vkey = VerifierKeyString(f.log);
  EXPECT_THAT(vkey, HasSubstr(f.log.name + "+" + HexEncode(f.log.key_hash) + "+"));
  Result<NoteVerifier> parsed = ParseVerifierKeyString(vkey);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->key_hash, f.log.key_hash);
  std::string wrong_hash = vkey;
  wrong_hash[f.log.name.size() + 1] = wrong_hash[f.log.name.size() + 1] == '0' ? '1' : '0';
  EXPECT_THAT(ParseVerifierKeyString(wrong_hash), StatusIs(Reason::kKeyError));
  EXPECT_THAT(ParseVerifierKeyString("name+0011"), StatusIs(Reason::kInvalidArgument));
}

TEST(CheckpointTest, SignedNoteVerifiesWithPlainEd25519OverTheBody) {
  Fixture f;
  Result<SignedNote> parsed = ParseSignedNote(f.note);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->text, CheckpointBody(TestCheckpoint()).value());
  ASSERT_EQ(parsed->signatures.size(), 1u);
  EXPECT_EQ(parsed->signatures[0].name, f.log.name);
  EXPECT_EQ(parsed->signatures[0].key_hash, f.log.key_hash);
  ASSERT_EQ(parsed->signatures[0].signature.size(), 64u);
  EXPECT_EQ(crypto_sign_verify_detached(
                reinterpret_cast<const uint8_t*>(parsed->signatures[0].signature.data()),
                reinterpret_cast<const uint8_t*>(parsed->text.data()), parsed->text.size(),
                f.log_key.verifying_key().bytes().data()),
            0);
  EXPECT_THAT(f.note, HasSubstr("\n\n\xE2\x80\x94 custos/0123456789abcdef "));
}

TEST(CheckpointTest, OpenAcceptsTheGenuineNote) {
  Fixture f;
  Result<OpenedCheckpoint> o = OpenCheckpoint(f.note, std::span(&f.log, 1));
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ(o->checkpoint, TestCheckpoint());
  EXPECT_THAT(o->verified_by, ElementsAre(f.log.name));
  EXPECT_TRUE(o->unknown.empty());
}

TEST(CheckpointTest, CosignaturesAreVerifiedWhenTheirKeyIsKnown) {
  Fixture f;
  Result<std::string> cosigned = CosignNote(f.note, f.witness.name, f.witness_key);
  ASSERT_THAT(cosigned, IsOk());
  const std::vector<NoteVerifier> both = {f.log, f.witness};
  Result<OpenedCheckpoint> o = OpenCheckpoint(*cosigned, both);
  ASSERT_THAT(o, IsOk());
  EXPECT_THAT(o->verified_by, ElementsAre(f.log.name, f.witness.name));
  // Witness unknown: reported, not trusted, note still accepted on the log's signature.
  o = OpenCheckpoint(*cosigned, std::span(&f.log, 1));
  ASSERT_THAT(o, IsOk());
  EXPECT_THAT(o->unknown, ElementsAre(f.witness.name));
  // A required witness that did not sign.
  const std::vector<std::string> need = {f.witness.name};
  EXPECT_THAT(OpenCheckpoint(f.note, both, need), StatusIs(Reason::kKeyError));
  EXPECT_THAT(OpenCheckpoint(*cosigned, both, need), IsOk());
  // A bad cosignature by a known witness rejects the whole note.
  std::string bad = *cosigned;
  const size_t last = bad.rfind(' ') + 10;
  bad[last] = bad[last] == 'A' ? 'B' : 'A';
  EXPECT_THAT(OpenCheckpoint(bad, both), StatusIs(Reason::kTokenInvalid));
}

TEST(CheckpointTest, UnknownKeyIsRejected) {
  Fixture f;
  EXPECT_THAT(OpenCheckpoint(f.note, std::span(&f.witness, 1)), StatusIs(Reason::kKeyError));
  // Same name, other key: the key hash differs, so the signature is by an unknown key.
  NoteVerifier impostor = MakeNoteVerifier(f.log.name, f.witness_key.verifying_key()).value();
  EXPECT_THAT(OpenCheckpoint(f.note, std::span(&impostor, 1)), StatusIs(Reason::kKeyError));
  EXPECT_THAT(OpenCheckpoint(f.note, {}), StatusIs(Reason::kKeyError));
}

TEST(CheckpointTest, ForgedBodyIsRejected) {
  Fixture f;
  std::string forged = f.note;
  forged.replace(forged.find("\n5\n"), 3, "\n6\n");
  EXPECT_THAT(OpenCheckpoint(forged, std::span(&f.log, 1)), StatusIs(Reason::kTokenInvalid));
  // Re-signed by another key under the log's name: unknown key hash.
  Result<std::string> other = SignCheckpoint(TestCheckpoint(), f.log.name, f.witness_key);
  ASSERT_THAT(other, IsOk());
  EXPECT_THAT(OpenCheckpoint(*other, std::span(&f.log, 1)), StatusIs(Reason::kKeyError));
  // Every single-byte change fails (and never crashes).
  for (size_t i = 0; i < f.note.size(); ++i) {
    std::string t = f.note;
    t[i] = static_cast<char>(t[i] ^ 0x04);
    EXPECT_FALSE(OpenCheckpoint(t, std::span(&f.log, 1)).ok()) << "byte " << i;
  }
}

// A cheap in-process fuzz: random byte edits, insertions and deletions never crash the parser and
// never yield a verified checkpoint other than the genuine one.
TEST(CheckpointTest, RandomlyMutatedNotesNeverVerifyAsSomethingElse) {
  Fixture f;
  const std::string cosigned = CosignNote(f.note, f.witness.name, f.witness_key).value();
  std::mt19937 rng(20261122);
  int accepted = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::string t = iter % 2 == 0 ? f.note : cosigned;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !t.empty(); ++e) {
      const size_t pos = rng() % t.size();
      switch (rng() % 3) {
        case 0:
          t[pos] = static_cast<char>(rng());
          break;
        case 1:
          t.insert(pos, 1, static_cast<char>(rng()));
          break;
        default:
          t.erase(pos, 1);
          break;
      }
    }
    Result<OpenedCheckpoint> o = OpenCheckpoint(t, std::span(&f.log, 1));
    if (o.ok()) {
      ++accepted;
      EXPECT_EQ(o->checkpoint, TestCheckpoint()) << "mutated note verified: " << t;
    }
  }
  // Only edits confined to the (unknown) witness line can keep the note valid.
  EXPECT_LT(accepted, 2500);
}

TEST(CheckpointTest, TruncatedNotesAreRejected) {
  Fixture f;
  for (size_t n = 0; n < f.note.size(); ++n) {
    EXPECT_FALSE(OpenCheckpoint(f.note.substr(0, n), std::span(&f.log, 1)).ok()) << n;
  }
  EXPECT_THAT(OpenCheckpoint(f.note.substr(0, f.note.size() - 1), std::span(&f.log, 1)),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseSignedNote(f.note.substr(0, f.note.find("\n\n") + 2)),
              StatusIs(Reason::kInvalidArgument));
}

TEST(CheckpointTest, MalformedSignatureLinesHavePreciseErrors) {
  const std::string body = "o\n1\n" + Base64Encode(MerkleLeafHash("x").bytes) + "\n\n";
  EXPECT_THAT(ParseSignedNote(body + "-- name AAAAAAA=\n"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseSignedNote(body + "\xE2\x80\x94 name !!!!\n"),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseSignedNote(body + "\xE2\x80\x94 name AAAA\n"),
              StatusIs(Reason::kInvalidArgument));  // 3 bytes: shorter than a key hash
  EXPECT_THAT(ParseSignedNote(body + "\xE2\x80\x94 na+me AAAAAAA=\n"),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseSignedNote(body + "\xE2\x80\x94 name AAAAAAA= extra\n"),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseSignedNote(body + "\xE2\x80\x94 name\n"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseSignedNote("o\xff\n1\n\n\xE2\x80\x94 name AAAAAAA=\n"),
              StatusIs(Reason::kInvalidUtf8));
  EXPECT_THAT(ParseSignedNote("o\t\n1\n\n\xE2\x80\x94 name AAAAAAA=\n"),
              StatusIs(Reason::kInvalidArgument));
  std::string many = body;
  for (int i = 0; i < 101; ++i) {
    many += "\xE2\x80\x94 name AAAAAAA=\n";
  }
  EXPECT_THAT(ParseSignedNote(many), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseSignedNote(std::string(kMaxNoteBytes + 1, 'a')),
              StatusIs(Reason::kInvalidArgument));
  // A known key with a signature of the wrong size.
  Fixture f;
  std::vector<uint8_t> raw(f.log.key_hash.begin(), f.log.key_hash.end());
  raw.resize(4 + 63);
  const std::string short_sig = CheckpointBody(TestCheckpoint()).value() + "\n\xE2\x80\x94 " +
                                f.log.name + " " + Base64Encode(raw) + "\n";
  EXPECT_THAT(OpenCheckpoint(short_sig, std::span(&f.log, 1)), StatusIs(Reason::kTokenInvalid));
}

TEST(CheckpointTest, MalformedBodiesHavePreciseErrors) {
  const std::string root = Base64Encode(MerkleLeafHash("x").bytes);
  EXPECT_THAT(ParseCheckpointBody("origin\n5\n"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseCheckpointBody("origin\n05\n" + root + "\n"),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseCheckpointBody("origin\n-5\n" + root + "\n"),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseCheckpointBody("origin\n99999999999999999999\n" + root + "\n"),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseCheckpointBody("origin\n5\n" + root.substr(0, 40) + "\n"),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseCheckpointBody("origin\n5\nAAAA\n"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseCheckpointBody("\n5\n" + root + "\n"), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseCheckpointBody("origin\n5\n" + root), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(ParseCheckpointBody("origin\n18446744073709551615\n" + root + "\n"), IsOk());
  Checkpoint c = TestCheckpoint();
  c.origin = "two\nlines";
  EXPECT_THAT(CheckpointBody(c), StatusIs(Reason::kInvalidArgument));
  c.origin = "";
  EXPECT_THAT(CheckpointBody(c), StatusIs(Reason::kInvalidArgument));
  Fixture f;
  EXPECT_THAT(SignCheckpoint(TestCheckpoint(), "bad name", f.log_key),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(SignCheckpoint(TestCheckpoint(), "", f.log_key), StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(SignCheckpoint(TestCheckpoint(),
                             "no\xC2\xA0"
                             "break",
                             f.log_key),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(SignCheckpoint(TestCheckpoint(), "ideographic\xE3\x80\x80space", f.log_key),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(SignCheckpoint(TestCheckpoint(), "bad\xFFutf8", f.log_key),
              StatusIs(Reason::kInvalidUtf8));
  EXPECT_THAT(SignCheckpoint(TestCheckpoint(), "caf\xC3\xA9.example/log", f.log_key), IsOk());
}

}  // namespace
}  // namespace custos::audit
