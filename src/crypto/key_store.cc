#include "custos/crypto/key_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "crypto/key_store_internal.h"
#include "custos/core/encoding.h"
#include "custos/core/json.h"
#include "custos/crypto/random.h"

namespace custos::crypto {
namespace internal {
namespace {
std::atomic<uint64_t> g_opslimit{crypto_pwhash_OPSLIMIT_MODERATE};
std::atomic<size_t> g_memlimit{crypto_pwhash_MEMLIMIT_MODERATE};
}  // namespace

KdfLimits SaveKdfLimits() { return KdfLimits{g_opslimit.load(), g_memlimit.load()}; }

KdfLimits SetSaveKdfLimitsForTest(KdfLimits limits) {
  return KdfLimits{g_opslimit.exchange(limits.opslimit), g_memlimit.exchange(limits.memlimit)};
}
}  // namespace internal

namespace {

constexpr size_t kSeedBytes = crypto_sign_SEEDBYTES;
constexpr size_t kSaltBytes = crypto_pwhash_SALTBYTES;
constexpr size_t kWrapKeyBytes = crypto_aead_xchacha20poly1305_ietf_KEYBYTES;
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kMaxFileBytes = 64 * 1024;  // a key file is ~400 bytes

// Wipes a std::string's bytes (secret material) before it is destroyed.
struct StringWiper {
  std::string* s;
  ~StringWiper() {
    if (!s->empty())
      sodium_memzero(s->data(), s->size());
  }
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Status IoError(std::string_view what, const std::filesystem::path& path, int err) {
  return Status(Reason::kIoError,
                std::string(what) + " " + path.string() + ": " + std::strerror(err), path.string());
}

Status KeyError(std::string msg, const std::filesystem::path& path) {
  return Status(Reason::kKeyError, std::move(msg), path.string());
}

std::string OctalMode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// The 32-byte XChaCha20-Poly1305 key protecting the seed: Argon2id(passphrase, salt).
Result<uint8_t*> DeriveWrapKey(const std::string& passphrase, std::span<const uint8_t> salt,
                               uint64_t opslimit, size_t memlimit) {
  auto* k = static_cast<uint8_t*>(sodium_malloc(kWrapKeyBytes));
  if (k == nullptr)
    return Status(Reason::kInternal, "cannot allocate locked key memory");
  if (crypto_pwhash(k, kWrapKeyBytes, passphrase.data(), passphrase.size(), salt.data(), opslimit,
                    memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    sodium_free(k);
    return Status(Reason::kInternal, "Argon2id failed (out of memory?)");
  }
  return k;
}

struct WrapKeyFree {
  void operator()(uint8_t* k) const { sodium_free(k); }
};
using WrapKey = std::unique_ptr<uint8_t, WrapKeyFree>;

// Builds the file body. The seed only ever sits in `body`, which the caller wipes.
Result<std::string> Serialize(const SigningKey& key, std::span<const uint8_t> seed,
                              const std::optional<std::string>& passphrase) {
  const VerifyingKey& vk = key.verifying_key();
  Json j = {
      {"v", 1},
      {"alg", "ed25519"},
      {"kid", vk.id().hex},
      {"public", HexEncode(vk.bytes())},
  };
  if (!passphrase.has_value()) {
    j["encrypted"] = false;
    j["seed"] = HexEncode(seed);
  } else {
    const internal::KdfLimits limits = internal::SaveKdfLimits();
    std::array<uint8_t, kSaltBytes> salt;
    RandomBytes(salt);
    CUSTOS_ASSIGN_OR_RETURN(uint8_t * raw,
                            DeriveWrapKey(*passphrase, salt, limits.opslimit, limits.memlimit));
    WrapKey wrap(raw);
    std::string sealed(kNonceBytes + kSeedBytes + kTagBytes, '\0');
    auto* s = reinterpret_cast<uint8_t*>(sealed.data());
    RandomBytes(std::span<uint8_t>(s, kNonceBytes));
    // The public key is the associated data: a sealed seed cannot be moved under another key.
    crypto_aead_xchacha20poly1305_ietf_encrypt(s + kNonceBytes, nullptr, seed.data(), seed.size(),
                                               vk.bytes().data(), vk.bytes().size(), nullptr, s,
                                               wrap.get());
    j["kdf"] = "argon2id13";
    j["opslimit"] = limits.opslimit;
    j["memlimit"] = limits.memlimit;
    j["salt"] = HexEncode(salt);
    j["sealed"] = Base64Encode(AsBytes(sealed));
  }
  std::string body;
  {
    Result<std::string> canon = CanonicalJson(j);
    if (j.contains("seed")) {
      std::string& hex = j["seed"].get_ref<std::string&>();
      sodium_memzero(hex.data(), hex.size());
    }
    if (!canon.ok())
      return canon.status();
    body = std::move(canon).value();
  }
  body.push_back('\n');
  return body;
}

Status WriteAll(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return IoError("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status SyncDirectoryOf(const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty())
    dir = ".";
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0)
    return IoError("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0)
    return IoError("cannot fsync directory", dir, errno);
  return Status::Ok();
}

// Writes `body` to `path` atomically: temp file (0600) in the same directory, fsync, rename,
// fsync the directory. With `no_replace`, an existing `path` is left alone and kAlreadyExists is
// returned.
Status WriteFileAtomic(const std::filesystem::path& path, const std::string& body,
                       bool no_replace) {
  std::string tmp = path.string() + ".tmp.XXXXXX";
  Fd fd(::mkostemp(tmp.data(), O_CLOEXEC));  // mkostemp creates the file 0600
  if (fd.get() < 0)
    return IoError("cannot create temporary file for", path, errno);
  const auto cleanup = [&] { ::unlink(tmp.c_str()); };
  if (::fchmod(fd.get(), 0600) != 0) {
    const int err = errno;
    cleanup();
    return IoError("cannot chmod", tmp, err);
  }
  if (Status s = WriteAll(fd.get(), body, tmp); !s.ok()) {
    cleanup();
    return s;
  }
  if (::fsync(fd.get()) != 0) {
    const int err = errno;
    cleanup();
    return IoError("cannot fsync", tmp, err);
  }
  if (::close(fd.release()) != 0) {
    const int err = errno;
    cleanup();
    return IoError("cannot close", tmp, err);
  }
  if (no_replace) {
    // link() fails with EEXIST instead of replacing; works on every local filesystem.
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      cleanup();
      if (err == EEXIST)
        return Status(Reason::kAlreadyExists, "key file exists", path.string());
      return IoError("cannot link", path, err);
    }
    cleanup();
  } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    cleanup();
    return IoError("cannot rename onto", path, err);
  }
  return SyncDirectoryOf(path);
}

Status SaveSeed(const SigningKey& key, std::span<const uint8_t> seed,
                const std::filesystem::path& path, const std::optional<std::string>& passphrase,
                bool no_replace) {
  EnsureSodium();
  CUSTOS_ASSIGN_OR_RETURN(std::string body, Serialize(key, seed, passphrase));
  StringWiper wipe{&body};
  return WriteFileAtomic(path, body, no_replace);
}

Result<std::string> ReadKeyFile(const std::filesystem::path& path) {
  // O_NOFOLLOW: a symlink planted in place of the key file is refused, and the mode checked is the
  // mode of the file actually read (fstat on the open descriptor, no check-then-open race).
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT)
      return KeyError("key file " + path.string() + " does not exist", path);
    if (err == ELOOP)
      return KeyError("key file " + path.string() + " is a symlink", path);
    return IoError("cannot open", path, err);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return IoError("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return KeyError("key file " + path.string() + " is not a regular file", path);
  }
  if ((st.st_mode & 077) != 0) {
    return KeyError("key file " + path.string() + " has mode " + OctalMode(st.st_mode) +
                        "; it must not be accessible to group or others (chmod 600)",
                    path);
  }
  if (st.st_size > static_cast<off_t>(kMaxFileBytes)) {
    return KeyError("key file " + path.string() + " is too large to be a key", path);
  }
  std::string body(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < body.size()) {
    const ssize_t n = ::read(fd.get(), body.data() + got, body.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      const int err = errno;
      sodium_memzero(body.data(), body.size());
      return IoError("cannot read", path, err);
    }
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  body.resize(got);
  return body;
}

// Field accessors: every problem with the file's content is kKeyError with the field named.
Result<std::string> StringField(const Json& j, const char* name, const std::filesystem::path& p) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) {
    return KeyError(std::string("key file field \"") + name + "\" is missing or not a string", p);
  }
  return it->get<std::string>();
}

Result<uint64_t> UintField(const Json& j, const char* name, const std::filesystem::path& p) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_unsigned()) {
    return KeyError(std::string("key file field \"") + name + "\" is missing or not an integer", p);
  }
  return it->get<uint64_t>();
}

template <size_t N>
Status HexFieldInto(const Json& j, const char* name, const std::filesystem::path& p,
                    std::array<uint8_t, N>* out) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) {
    return KeyError(std::string("key file field \"") + name + "\" is missing or not a string", p);
  }
  Result<std::vector<uint8_t>> bytes = HexDecode(it->get_ref<const std::string&>());
  if (!bytes.ok() || bytes->size() != N) {
    if (bytes.ok())
      sodium_memzero(bytes->data(), bytes->size());
    return KeyError(std::string("key file field \"") + name + "\" must be " + std::to_string(N) +
                        " bytes of lowercase hex",
                    p);
  }
  std::copy(bytes->begin(), bytes->end(), out->begin());
  sodium_memzero(bytes->data(), bytes->size());
  return Status::Ok();
}

Status CheckFields(const Json& j, std::initializer_list<std::string_view> allowed,
                   const std::filesystem::path& p) {
  for (const auto& [k, v] : j.items()) {
    bool known = false;
    for (std::string_view a : allowed)
      known = known || k == a;
    if (!known) {
      return KeyError("key file has unknown field \"" + JsonPointerToken(k).substr(0, 64) + "\"",
                      p);
    }
  }
  return Status::Ok();
}

// Parses and checks the file, leaving the seed and the recorded public key in the outputs.
// On error the outputs hold no secret (the caller wipes *seed regardless).
Status DecodeKeyFile(const std::string& body, const std::filesystem::path& path,
                     const std::optional<std::string>& passphrase,
                     std::array<uint8_t, kSeedBytes>* seed, std::array<uint8_t, 32>* pk) {
  JsonLimits limits;
  limits.max_bytes = kMaxFileBytes;
  limits.max_depth = 1;
  Result<Json> parsed = ParseUntrustedJson(body, limits);
  if (!parsed.ok()) {
    return KeyError("key file " + path.string() +
                        " is not valid JSON: " + std::string(parsed.status().message()),
                    path);
  }
  Json& j = *parsed;
  // The hex seed of an unencrypted file is wiped from the parsed tree before it is freed.
  struct JsonSeedWiper {
    Json* j;
    ~JsonSeedWiper() {
      auto it = j->find("seed");
      if (it != j->end() && it->is_string()) {
        std::string& s = it->get_ref<std::string&>();
        sodium_memzero(s.data(), s.size());
      }
    }
  } wiper{&j};
  if (!j.is_object())
    return KeyError("key file is not a JSON object", path);

  CUSTOS_ASSIGN_OR_RETURN(const uint64_t version, UintField(j, "v", path));
  if (version != 1) {
    return KeyError("key file version " + std::to_string(version) + " is not supported", path);
  }
  CUSTOS_ASSIGN_OR_RETURN(const std::string alg, StringField(j, "alg", path));
  if (alg != "ed25519")
    return KeyError("key file algorithm is not ed25519", path);
  CUSTOS_RETURN_IF_ERROR(HexFieldInto(j, "public", path, pk));
  CUSTOS_ASSIGN_OR_RETURN(const std::string kid, StringField(j, "kid", path));
  CUSTOS_ASSIGN_OR_RETURN(VerifyingKey vk, VerifyingKey::FromBytes(*pk));
  if (kid != vk.id().hex) {
    return KeyError("key file kid does not match its public key", path);
  }

  const auto encrypted_it = j.find("encrypted");
  if (encrypted_it != j.end()) {
    // Unencrypted form.
    if (!encrypted_it->is_boolean() || encrypted_it->get<bool>()) {
      return KeyError("key file field \"encrypted\" must be false when present", path);
    }
    CUSTOS_RETURN_IF_ERROR(
        CheckFields(j, {"v", "alg", "kid", "public", "encrypted", "seed"}, path));
    if (passphrase.has_value()) {
      // Otherwise anyone able to write the file could swap in their own key unnoticed.
      return KeyError("a passphrase was given but key file " + path.string() + " is not encrypted",
                      path);
    }
    return HexFieldInto(j, "seed", path, seed);
  }

  // Encrypted form.
  CUSTOS_RETURN_IF_ERROR(CheckFields(
      j, {"v", "alg", "kid", "public", "kdf", "opslimit", "memlimit", "salt", "sealed"}, path));
  if (!passphrase.has_value()) {
    return KeyError("key file " + path.string() + " is encrypted; a passphrase is required", path);
  }
  CUSTOS_ASSIGN_OR_RETURN(const std::string kdf, StringField(j, "kdf", path));
  if (kdf != "argon2id13")
    return KeyError("key file kdf is not argon2id13", path);
  CUSTOS_ASSIGN_OR_RETURN(const uint64_t opslimit, UintField(j, "opslimit", path));
  CUSTOS_ASSIGN_OR_RETURN(const uint64_t memlimit, UintField(j, "memlimit", path));
  // Bounded so that a crafted file cannot make loading take minutes or gigabytes.
  if (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > crypto_pwhash_OPSLIMIT_SENSITIVE ||
      memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > crypto_pwhash_MEMLIMIT_SENSITIVE) {
    return KeyError("key file Argon2id limits are out of range", path);
  }
  std::array<uint8_t, kSaltBytes> salt;
  CUSTOS_RETURN_IF_ERROR(HexFieldInto(j, "salt", path, &salt));
  CUSTOS_ASSIGN_OR_RETURN(const std::string sealed_b64, StringField(j, "sealed", path));
  Result<std::vector<uint8_t>> sealed = Base64Decode(sealed_b64);
  if (!sealed.ok() || sealed->size() != kNonceBytes + kSeedBytes + kTagBytes) {
    return KeyError("key file field \"sealed\" is not a sealed 32-byte seed", path);
  }
  CUSTOS_ASSIGN_OR_RETURN(
      uint8_t * raw, DeriveWrapKey(*passphrase, salt, opslimit, static_cast<size_t>(memlimit)));
  WrapKey wrap(raw);
  const uint8_t* s = sealed->data();
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(seed->data(), nullptr, nullptr, s + kNonceBytes,
                                                 sealed->size() - kNonceBytes, pk->data(),
                                                 pk->size(), s, wrap.get()) != 0) {
    return KeyError("wrong passphrase, or key file " + path.string() + " was altered", path);
  }
  return Status::Ok();
}

}  // namespace

Status KeyStore::Save(const SigningKey& key, const std::filesystem::path& path,
                      const std::optional<std::string>& passphrase) {
  return SaveSeed(key, key.ExportSecret(SecretAccess()), path, passphrase, /*no_replace=*/false);
}

Result<SigningKey> KeyStore::Load(const std::filesystem::path& path,
                                  const std::optional<std::string>& passphrase) {
  EnsureSodium();
  CUSTOS_ASSIGN_OR_RETURN(std::string body, ReadKeyFile(path));
  StringWiper wipe_body{&body};
  std::array<uint8_t, kSeedBytes> seed{};
  std::array<uint8_t, 32> pk{};
  Status decoded = DecodeKeyFile(body, path, passphrase, &seed, &pk);
  Result<SigningKey> key = decoded.ok() ? SigningKey::FromSeed(seed, SecretAccess())
                                        : Result<SigningKey>(std::move(decoded));
  sodium_memzero(seed.data(), seed.size());
  if (!key.ok())
    return Status(key.status().reason(), std::string(key.status().message()), path.string());
  if (sodium_memcmp(key->verifying_key().bytes().data(), pk.data(), pk.size()) != 0) {
    return KeyError("key file " + path.string() + ": the seed does not match the public key", path);
  }
  return key;
}

Result<SigningKey> KeyStore::LoadOrCreate(const std::filesystem::path& path, bool* created) {
  if (created != nullptr)
    *created = false;
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0)
    return Load(path, std::nullopt);
  if (errno != ENOENT)
    return IoError("cannot stat", path, errno);
  CUSTOS_ASSIGN_OR_RETURN(SigningKey key, SigningKey::Generate());
  Status saved = SaveSeed(key, key.ExportSecret(SecretAccess()), path, std::nullopt,
                          /*no_replace=*/true);
  if (saved.reason() == Reason::kAlreadyExists) {
    return Load(path, std::nullopt);  // another process created it first: use theirs
  }
  CUSTOS_RETURN_IF_ERROR(saved);
  if (created != nullptr)
    *created = true;
  return key;
}

Status KeyStore::LendDerivedSeed(const SigningKey& key, std::string_view purpose,
                                 const std::function<Status(std::span<const uint8_t>)>& use) {
  const std::span<const uint8_t> seed = key.ExportSecret(SecretAccess());
  std::array<uint8_t, crypto_generichash_BYTES> derived{};
  static_assert(crypto_generichash_BYTES == 32);
  if (crypto_generichash(derived.data(), derived.size(),
                         reinterpret_cast<const uint8_t*>(purpose.data()), purpose.size(),
                         seed.data(), seed.size()) != 0) {
    return Status(Reason::kKeyError, "cannot derive a key");
  }
  Status st = use(std::span<const uint8_t>(derived));
  sodium_memzero(derived.data(), derived.size());
  return st;
}

Result<SigningKey> KeyStore::FromSeedForTest(std::span<const uint8_t> seed) {
  return SigningKey::FromSeed(seed, SecretAccess());
}

}  // namespace custos::crypto
