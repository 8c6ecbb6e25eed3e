#pragma once
// Rotation of the kernel identity (docs/decisions/011-log-origin-and-key-rotation.md).
//
// RotateIdentity() replaces DATA_DIR/identity.key with a new Ed25519 key, offline (no kernel may
// run on the data directory meanwhile):
//   1. the new key is saved as identity.key.next, encrypted the way the identity is (Argon2id +
//      XChaCha20-Poly1305 with the same passphrase; unencrypted only if the identity is), 0600;
//   2. the flight log's writer checkpoints everything with the old key, appends a rotation
//      statement signed by both keys (audit/key_rotation.h) and a checkpoint by the new key;
//   3. the old key is kept as DATA_DIR/keys/<old key id>.key (re-encrypted, same passphrase) so
//      payloads sealed before the rotation still open (`audit show`), and identity.key.next is
//      renamed over identity.key.
// A crash between the steps is finished by FinishInterruptedRotation() (called by Kernel::Open
// and the CLI before the identity is loaded): if the log holds the statement naming the key in
// identity.key.next, step 3 is (re)done; if not, the rotation never happened and the file is
// removed. Everything derived from the identity follows the new key from then on (payload and
// handle keys, the token root): tokens minted before a rotation no longer verify.
//
// Errors: kKeyError (wrong passphrase, unsafe key file), kNotFound (no flight log yet), the log
// writer's recovery errors, kIoError for the files.
//
// Thread-compatible; not safe against another process using the data directory.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "custos/core/clock.h"
#include "custos/core/result.h"
#include "custos/crypto/keys.h"

namespace custos::kernel {

inline constexpr char kIdentityFile[] = "identity.key";
inline constexpr char kNextIdentityFile[] = "identity.key.next";
inline constexpr char kRetiredKeysDir[] = "keys";

struct IdentityRotation {
  std::string old_key_id, new_key_id;
  int64_t seq = 0;           // the rotation statement's entry
  uint64_t tree_size = 0;    // entries before it
  std::string verifier_key;  // the new key's note verifier key (for --trusted-keys files)
};

struct RotateOptions {
  std::optional<std::string> passphrase;  // of the identity; the new key is saved the same way
  const Clock* clock = nullptr;           // default: the system clock
  // Tests: stop after step 2, as a crash would (identity.key.next left behind).
  bool stop_before_install_for_test = false;
};

Result<IdentityRotation> RotateIdentity(const std::filesystem::path& data_dir,
                                        const RotateOptions& options);

// Finishes or undoes a rotation a crash interrupted (see above). Returns true if it installed the
// new identity. A no-op (false) without identity.key.next.
Result<bool> FinishInterruptedRotation(const std::filesystem::path& data_dir,
                                       const std::optional<std::string>& passphrase);

// The identities retired by rotations (DATA_DIR/keys/*.key), loaded with `passphrase`.
Result<std::vector<crypto::SigningKey>> LoadRetiredKeys(
    const std::filesystem::path& data_dir, const std::optional<std::string>& passphrase);

}  // namespace custos::kernel
