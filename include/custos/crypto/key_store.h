#pragma once
// KeyStore reads and writes the kernel identity (an Ed25519 key) as a small JSON file:
//   {"v":1,"alg":"ed25519","kid":"...","public":"<hex>",
//    "kdf":"argon2id13","opslimit":N,"memlimit":N,"salt":"<hex>",     (encrypted form)
//    "sealed":"<base64 XChaCha20-Poly1305 of the seed>"}
//   or "seed":"<hex>" with "encrypted":false when the caller asked explicitly for no passphrase.
//   Keys are lowercase hex/base64 as in core/encoding.h; the file is canonical JSON plus "\n".
//   "sealed" is nonce(24) || ciphertext || tag(16) under the 32-byte key
//   Argon2id(passphrase, salt, opslimit, memlimit), with the 32 public-key bytes as associated data
//   (a sealed seed cannot be moved under another public key). New files use libsodium's MODERATE
//   limits; Load accepts limits within [MIN, SENSITIVE] only, so a crafted file cannot demand
//   minutes or gigabytes. (Tests lower the cost via src/crypto/key_store_internal.h.)
// Files are written 0600 through a temp file + fsync + rename + directory fsync; loading refuses a
// file accessible to group or others in any way (kKeyError naming the octal mode), a symlink, an
// all-zero seed, unknown fields, a kid or public key that does not match the seed, and a
// passphrase given for an unencrypted file (so whoever can write the file cannot swap in a key).
// Errors: kKeyError for a missing file or anything wrong with its content or mode (including a
// wrong passphrase); kIoError when the filesystem fails. Seeds read or written are wiped.
//
// Thread-safe: static functions only.

#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "custos/core/result.h"
#include "custos/crypto/keys.h"

namespace custos::crypto {

class KeyStore {
 public:
  // passphrase == nullopt writes the seed unencrypted (only when explicitly asked).
  static Status Save(const SigningKey& key, const std::filesystem::path& path,
                     const std::optional<std::string>& passphrase);
  static Result<SigningKey> Load(const std::filesystem::path& path,
                                 const std::optional<std::string>& passphrase);
  // Loads `path`, or if it does not exist generates a key, saves it unencrypted with 0600 and sets
  // *created (if non-null). Used for the kernel's first run (the caller tells the user; the library
  // prints nothing). Two processes racing here end up with the same key: creation never replaces an
  // existing file.
  static Result<SigningKey> LoadOrCreate(const std::filesystem::path& path, bool* created);

  // Derives a 32-byte seed for one named purpose from `key`'s seed, BLAKE2b-256(key = seed,
  // message = purpose) as AeadKey::DeriveFrom does, and lends it to `use` for the duration of the
  // call, then wipes it. This is how a key of another library's type is built from the identity
  // (the Biscuit token root, decision 008) without the identity's own seed leaving crypto; grep
  // for LendDerivedSeed lists every such use. Returns what `use` returns.
  // REQUIRES: `key` is not moved-from; `use` does not keep the span.
  static Status LendDerivedSeed(const SigningKey& key, std::string_view purpose,
                                const std::function<Status(std::span<const uint8_t>)>& use);

  // For tests: a key from a fixed seed.
  static Result<SigningKey> FromSeedForTest(std::span<const uint8_t> seed);
};

}  // namespace custos::crypto
