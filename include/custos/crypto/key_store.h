#pragma once
// KeyStore reads and writes the kernel identity (an Ed25519 key) as a small JSON file:
//   {"v":1,"alg":"ed25519","kid":"...","public":"<hex>",
//    "kdf":"argon2id13","opslimit":N,"memlimit":N,"salt":"<hex>",     (encrypted form)
//    "sealed":"<base64 XChaCha20-Poly1305 of the seed>"}
//   or "seed":"<hex>" with "encrypted":false when the caller asked explicitly for no passphrase.
// Files are written 0600 through a temp file + rename; loading refuses a file readable by group or
// others (kKeyError naming the mode), an all-zero seed, and a public key that does not match.
//
// Thread-safe: static functions only.

#include <filesystem>
#include <optional>
#include <string>

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
  // *created. Used for the kernel's first run (it says so on stderr).
  static Result<SigningKey> LoadOrCreate(const std::filesystem::path& path, bool* created);

  // For tests: a key from a fixed seed.
  static Result<SigningKey> FromSeedForTest(std::span<const uint8_t> seed);
};

}  // namespace custos::crypto
