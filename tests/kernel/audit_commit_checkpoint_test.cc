// audit.commit signs a checkpoint of the durable log with the kernel identity, returns it in the
// frame and stores it as the latest checkpoint.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <span>
#include <string>

#include "custos/audit/checkpoint.h"
#include "custos/audit/merkle.h"
#include "custos/crypto/keys.h"
#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

using ::custos::testing::IsAllowed;
using ::custos::testing::IsOk;
using ::custos::testing::KernelHarness;
using ::testing::StartsWith;

class AuditCommitCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h_.Open(h_.Spec())); }

  audit::NoteVerifier KernelVerifier() {
    const crypto::VerifyingKey& k = h_.kernel().identity();
    return audit::MakeNoteVerifier("custos/" + k.id().hex, k).value();
  }

  // The Merkle root of the first `size` log entries, from the store.
  audit::MerkleHash RootOfFirst(uint64_t size) {
    audit::CompactRange range;
    for (const store::LogRow& row : h_.Rows()) {
      if (range.size() == size)
        break;
      range.Append(audit::MerkleLeafHash(row.canonical));
    }
    EXPECT_EQ(range.size(), size);
    return range.Root();
  }

  KernelHarness h_;
};

TEST_F(AuditCommitCheckpointTest, CommitReturnsACheckpointSignedByTheKernelOfTheDurableLog) {
  ASSERT_THAT(h_.Worker("memory.alloc", "a", {{"value", 1}}), IsAllowed());
  ASSERT_THAT(h_.Worker("memory.alloc", "b", {{"value", 2}}), IsAllowed());
  SyscallResult r = h_.Worker("audit.commit", "");
  ASSERT_THAT(r, IsAllowed());
  ASSERT_TRUE(r.frame.contains("checkpoint")) << r.frame.dump();
  const std::string note = r.frame["checkpoint"].get<std::string>();
  const audit::NoteVerifier v = KernelVerifier();
  EXPECT_THAT(note, StartsWith(v.name + "\n"));

  Result<audit::OpenedCheckpoint> o = audit::OpenCheckpoint(note, std::span(&v, 1));
  ASSERT_THAT(o, IsOk());
  EXPECT_EQ(o->verified_by, std::vector<std::string>{v.name});
  const int64_t durable = r.frame["durable_seq"].get<int64_t>();
  EXPECT_EQ(o->checkpoint.size, static_cast<uint64_t>(durable));
  EXPECT_EQ(o->checkpoint.origin, v.name);
  EXPECT_EQ(o->checkpoint.root, RootOfFirst(o->checkpoint.size));

  // It is the stored latest checkpoint.
  Result<std::optional<store::CheckpointRow>> stored = h_.kernel().store().LatestCheckpoint();
  ASSERT_THAT(stored, IsOk());
  ASSERT_TRUE(stored->has_value());
  EXPECT_EQ((*stored)->note, note);
}

TEST_F(AuditCommitCheckpointTest, LaterCommitStoresALargerCheckpointAndOtherKeysDoNotOpenIt) {
  SyscallResult first = h_.Worker("audit.commit", "");
  ASSERT_THAT(first, IsAllowed());
  ASSERT_THAT(h_.Worker("memory.alloc", "c", {{"value", 3}}), IsAllowed());
  SyscallResult second = h_.Worker("audit.commit", "");
  ASSERT_THAT(second, IsAllowed());

  const audit::NoteVerifier v = KernelVerifier();
  Result<audit::OpenedCheckpoint> a =
      audit::OpenCheckpoint(first.frame["checkpoint"].get<std::string>(), std::span(&v, 1));
  Result<audit::OpenedCheckpoint> b =
      audit::OpenCheckpoint(second.frame["checkpoint"].get<std::string>(), std::span(&v, 1));
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_LT(a->checkpoint.size, b->checkpoint.size);
  EXPECT_EQ(b->checkpoint.size, second.frame["durable_seq"].get<uint64_t>());
  EXPECT_EQ(b->checkpoint.root, RootOfFirst(b->checkpoint.size));
  Result<std::optional<store::CheckpointRow>> stored = h_.kernel().store().LatestCheckpoint();
  ASSERT_THAT(stored, IsOk());
  ASSERT_TRUE(stored->has_value());
  EXPECT_EQ((*stored)->note, second.frame["checkpoint"].get<std::string>());

  // Under the same name but another key, the kernel's signature is not trusted.
  const crypto::SigningKey other = crypto::SigningKey::Generate().value();
  const audit::NoteVerifier impostor =
      audit::MakeNoteVerifier(v.name, other.verifying_key()).value();
  Result<audit::OpenedCheckpoint> o =
      audit::OpenCheckpoint(second.frame["checkpoint"].get<std::string>(), std::span(&impostor, 1));
  EXPECT_FALSE(o.ok());
  EXPECT_EQ(o.status().reason(), Reason::kKeyError);
}

}  // namespace
}  // namespace custos::kernel
