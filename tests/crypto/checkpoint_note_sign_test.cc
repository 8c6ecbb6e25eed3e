// SignContext::kCheckpointNote: C2SP note text is signed raw (standard Ed25519 over the note
// text), only note text is accepted, and such signatures never cross over to the
// domain-separated contexts (docs/decisions/005-checkpoint-note-signatures.md).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "custos/core/encoding.h"
#include "custos/crypto/key_store.h"
#include "custos/crypto/keys.h"
#include "testing/matchers.h"

namespace custos::crypto {
namespace {

using ::custos::testing::IsOk;
using ::custos::testing::StatusIs;

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

SigningKey TestKey() {
  std::vector<uint8_t> seed(32);
  for (size_t i = 0; i < seed.size(); ++i) {
    seed[i] = static_cast<uint8_t>(i + 1);
  }
  return KeyStore::FromSeedForTest(seed).value();
}

constexpr std::string_view kNote = "custos/abc\n3\nq2xwWjUk1KZbXp6J+3bJo4ovSfkSJlcPo7JB1c/PoEk=\n";

TEST(CheckpointNoteSignTest, SignatureIsPlainEd25519OverTheNoteText) {
  const SigningKey key = TestKey();
  Result<Signature> sig = key.Sign(SignContext::kCheckpointNote, AsBytes(kNote));
  ASSERT_THAT(sig, IsOk());
  // Any standard Ed25519 verifier accepts it: no prefix was added.
  EXPECT_EQ(
      crypto_sign_verify_detached(sig->bytes.data(), reinterpret_cast<const uint8_t*>(kNote.data()),
                                  kNote.size(), key.verifying_key().bytes().data()),
      0);
  EXPECT_THAT(key.verifying_key().Verify(SignContext::kCheckpointNote, AsBytes(kNote), *sig),
              IsOk());
  std::string changed(kNote);
  changed[8] ^= 1;
  EXPECT_THAT(key.verifying_key().Verify(SignContext::kCheckpointNote, AsBytes(changed), *sig),
              StatusIs(Reason::kTokenInvalid));
}

TEST(CheckpointNoteSignTest, OnlyNoteTextIsSigned) {
  const SigningKey key = TestKey();
  EXPECT_THAT(key.Sign(SignContext::kCheckpointNote, AsBytes("")),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(key.Sign(SignContext::kCheckpointNote, AsBytes("no newline")),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(key.Sign(SignContext::kCheckpointNote, AsBytes(std::string("a\0b\n", 4))),
              StatusIs(Reason::kInvalidArgument));
  EXPECT_THAT(key.Sign(SignContext::kCheckpointNote, AsBytes("tab\there\n")),
              StatusIs(Reason::kInvalidArgument));
  // A domain-separated message (it has a NUL) cannot be obtained through this context.
  EXPECT_THAT(key.Sign(SignContext::kCheckpointNote,
                       AsBytes(std::string("custos/v1/capability_token\0grant\n", 33))),
              StatusIs(Reason::kInvalidArgument));
}

TEST(CheckpointNoteSignTest, SignaturesDoNotCrossContexts) {
  const SigningKey key = TestKey();
  const Signature raw = key.Sign(SignContext::kCheckpointNote, AsBytes(kNote)).value();
  EXPECT_THAT(key.verifying_key().Verify(SignContext::kCheckpoint, AsBytes(kNote), raw),
              StatusIs(Reason::kTokenInvalid));
  const Signature sep = key.Sign(SignContext::kCheckpoint, AsBytes(kNote)).value();
  EXPECT_THAT(key.verifying_key().Verify(SignContext::kCheckpointNote, AsBytes(kNote), sep),
              StatusIs(Reason::kTokenInvalid));
  EXPECT_EQ(SignContextName(SignContext::kCheckpointNote), "checkpoint_note");
}

}  // namespace
}  // namespace custos::crypto
