#include "custos/crypto/keys.h"

#include <sodium.h>

#include <algorithm>
#include <string>
#include <utility>

#include "custos/core/encoding.h"
#include "custos/crypto/random.h"
#include "custos/crypto/sha256.h"

namespace custos::crypto {
namespace {

constexpr size_t kSeedBytes = crypto_sign_SEEDBYTES;
constexpr size_t kSecretKeyBytes = crypto_sign_SECRETKEYBYTES;
constexpr size_t kAeadKeyBytes = crypto_aead_xchacha20poly1305_ietf_KEYBYTES;
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kSeedBytes == 32 && kSecretKeyBytes == 64);
static_assert(crypto_sign_PUBLICKEYBYTES == 32 && crypto_sign_BYTES == 64);

// kCheckpointNote signs only C2SP note text: non-empty, '\n'-terminated, no control byte but
// '\n'. Such text has no NUL, so it never equals a domain-separated message (which always has a
// NUL right after "custos/v1/<context>").
Status CheckNoteText(std::span<const uint8_t> msg) {
  if (msg.empty() || msg.back() != '\n') {
    return Status(Reason::kInvalidArgument, "checkpoint note text must end with a newline");
  }
  for (uint8_t c : msg) {
    if (c < 0x20 && c != '\n') {
      return Status(Reason::kInvalidArgument, "checkpoint note text contains a control character");
    }
  }
  return Status::Ok();
}

// "custos/v1/<context>\0" || msg: the bytes that are actually signed (msg itself for
// kCheckpointNote, after CheckNoteText).
std::string DomainSeparated(SignContext ctx, std::span<const uint8_t> msg) {
  if (ctx == SignContext::kCheckpointNote) {
    return std::string(reinterpret_cast<const char*>(msg.data()), msg.size());
  }
  const std::string_view name = SignContextName(ctx);
  std::string m;
  m.reserve(10 + name.size() + 1 + msg.size());
  m.append("custos/v1/");
  m.append(name);
  m.push_back('\0');
  m.append(reinterpret_cast<const char*>(msg.data()), msg.size());
  return m;
}

// Secret memory: guarded pages, mlock'd, wiped by sodium_free. Null on allocation failure.
uint8_t* AllocSecret(size_t n) {
  EnsureSodium();
  return static_cast<uint8_t*>(sodium_malloc(n));
}

// `sk` holds a seed in its first 32 bytes; completes it in place to libsodium's seed || public
// key form and returns the public key.
std::array<uint8_t, 32> ExpandSeedInPlace(uint8_t* sk) {
  std::array<uint8_t, kSeedBytes> seed;
  std::copy(sk, sk + kSeedBytes, seed.begin());
  std::array<uint8_t, 32> pk;
  crypto_sign_seed_keypair(pk.data(), sk, seed.data());
  sodium_memzero(seed.data(), seed.size());
  return pk;
}

}  // namespace

std::string_view SignContextName(SignContext c) {
  switch (c) {
    case SignContext::kCheckpoint:
      return "checkpoint";
    case SignContext::kReceipt:
      return "receipt";
    case SignContext::kCapabilityToken:
      return "capability_token";
    case SignContext::kKeyRotation:
      return "key_rotation";
    case SignContext::kCheckpointNote:
      return "checkpoint_note";
    case SignContext::kSignedRequest:
      return "signed_request";
    case SignContext::kTest:
      return "test";
  }
  return "invalid";
}

// ---- VerifyingKey ----

Result<VerifyingKey> VerifyingKey::FromBytes(std::span<const uint8_t> bytes) {
  EnsureSodium();
  if (bytes.size() != crypto_sign_PUBLICKEYBYTES) {
    return Status(Reason::kKeyError,
                  "Ed25519 public key must be 32 bytes, got " + std::to_string(bytes.size()));
  }
  // Rejects non-canonical encodings, points off the curve, small-order points (including the
  // all-zero key's neighbours) and points outside the prime-order subgroup.
  if (sodium_is_zero(bytes.data(), bytes.size()) ||
      crypto_core_ed25519_is_valid_point(bytes.data()) != 1) {
    return Status(Reason::kKeyError, "not a valid Ed25519 public key");
  }
  std::array<uint8_t, 32> pk;
  std::copy(bytes.begin(), bytes.end(), pk.begin());
  return VerifyingKey(pk);
}

Status VerifyingKey::Verify(SignContext ctx, std::span<const uint8_t> msg,
                            const Signature& sig) const {
  EnsureSodium();
  if (ctx == SignContext::kCheckpointNote) {
    CUSTOS_RETURN_IF_ERROR(CheckNoteText(msg));
  }
  const std::string m = DomainSeparated(ctx, msg);
  if (crypto_sign_verify_detached(sig.bytes.data(), reinterpret_cast<const uint8_t*>(m.data()),
                                  m.size(), pk_.data()) != 0) {
    return Status(Reason::kTokenInvalid, "signature does not verify under key " + id().hex +
                                             " for context " + std::string(SignContextName(ctx)));
  }
  return Status::Ok();
}

KeyId VerifyingKey::id() const {
  const Digest d = Sha256(std::span<const uint8_t>(pk_));
  return KeyId{HexEncode(std::span<const uint8_t>(d.bytes.data(), 8))};
}

// ---- SigningKey ----

Result<SigningKey> SigningKey::Generate() {
  EnsureSodium();
  uint8_t* sk = AllocSecret(kSecretKeyBytes);
  if (sk == nullptr)
    return Status(Reason::kInternal, "cannot allocate locked key memory");
  // The seed is drawn straight into locked memory; it never sits on the stack.
  RandomBytes(std::span<uint8_t>(sk, kSeedBytes));
  Result<VerifyingKey> vk = VerifyingKey::FromBytes(ExpandSeedInPlace(sk));
  if (!vk.ok()) {
    sodium_free(sk);
    return vk.status();
  }
  // Read-only from here on. Not no-access: concurrent Sign() calls would race on toggling it.
  sodium_mprotect_readonly(sk);
  return SigningKey(sk, *vk);
}

Result<SigningKey> SigningKey::FromSeed(std::span<const uint8_t> seed, SecretAccess) {
  if (seed.size() != kSeedBytes) {
    return Status(Reason::kKeyError,
                  "Ed25519 seed must be 32 bytes, got " + std::to_string(seed.size()));
  }
  EnsureSodium();
  if (sodium_is_zero(seed.data(), seed.size())) {
    return Status(Reason::kKeyError, "refusing an all-zero Ed25519 seed");
  }
  uint8_t* sk = AllocSecret(kSecretKeyBytes);
  if (sk == nullptr)
    return Status(Reason::kInternal, "cannot allocate locked key memory");
  std::copy(seed.begin(), seed.end(), sk);
  Result<VerifyingKey> vk = VerifyingKey::FromBytes(ExpandSeedInPlace(sk));
  if (!vk.ok()) {
    sodium_free(sk);
    return vk.status();
  }
  sodium_mprotect_readonly(sk);
  return SigningKey(sk, *vk);
}

SigningKey::SigningKey(SigningKey&& o) noexcept : sk_(std::exchange(o.sk_, nullptr)), vk_(o.vk_) {}

SigningKey& SigningKey::operator=(SigningKey&& o) noexcept {
  if (this != &o) {
    if (sk_ != nullptr)
      sodium_free(sk_);
    sk_ = std::exchange(o.sk_, nullptr);
    vk_ = o.vk_;
  }
  return *this;
}

SigningKey::~SigningKey() {
  if (sk_ != nullptr)
    sodium_free(sk_);  // makes the pages writable, wipes, unlocks, frees
}

Result<Signature> SigningKey::Sign(SignContext ctx, std::span<const uint8_t> msg) const {
  if (sk_ == nullptr)
    return Status(Reason::kKeyError, "signing with a moved-from key");
  if (ctx == SignContext::kCheckpointNote) {
    CUSTOS_RETURN_IF_ERROR(CheckNoteText(msg));
  }
  const std::string m = DomainSeparated(ctx, msg);
  Signature sig;
  crypto_sign_detached(sig.bytes.data(), nullptr, reinterpret_cast<const uint8_t*>(m.data()),
                       m.size(), sk_);
  return sig;
}

std::span<const uint8_t> SigningKey::ExportSecret(SecretAccess) const {
  CUSTOS_CHECK(sk_ != nullptr);
  return {sk_, kSeedBytes};  // libsodium's secret key is seed || public key
}

// ---- AeadKey ----

AeadKey AeadKey::Generate() {
  uint8_t* k = AllocSecret(kAeadKeyBytes);
  CUSTOS_CHECK(k != nullptr);
  crypto_aead_xchacha20poly1305_ietf_keygen(k);
  sodium_mprotect_readonly(k);
  return AeadKey(k);
}

AeadKey AeadKey::DeriveFrom(const SigningKey& key, std::string_view purpose) {
  const std::span<const uint8_t> seed = key.ExportSecret(SecretAccess());
  uint8_t* k = AllocSecret(kAeadKeyBytes);
  CUSTOS_CHECK(k != nullptr);
  // BLAKE2b-256(key = seed, message = purpose).
  CUSTOS_CHECK(crypto_generichash(k, kAeadKeyBytes,
                                  reinterpret_cast<const uint8_t*>(purpose.data()), purpose.size(),
                                  seed.data(), seed.size()) == 0);
  sodium_mprotect_readonly(k);
  return AeadKey(k);
}

AeadKey::AeadKey(AeadKey&& o) noexcept : k_(std::exchange(o.k_, nullptr)) {}

AeadKey& AeadKey::operator=(AeadKey&& o) noexcept {
  if (this != &o) {
    if (k_ != nullptr)
      sodium_free(k_);
    k_ = std::exchange(o.k_, nullptr);
  }
  return *this;
}

AeadKey::~AeadKey() {
  if (k_ != nullptr)
    sodium_free(k_);
}

std::string AeadKey::Seal(std::string_view plaintext, std::string_view ad) const {
  CUSTOS_CHECK(k_ != nullptr);
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* o = reinterpret_cast<uint8_t*>(out.data());
  RandomBytes(std::span<uint8_t>(o, kNonceBytes));  // 192-bit random nonces never collide
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      o + kNonceBytes, &clen, reinterpret_cast<const uint8_t*>(plaintext.data()), plaintext.size(),
      reinterpret_cast<const uint8_t*>(ad.data()), ad.size(), nullptr, o, k_);
  CUSTOS_CHECK(clen == plaintext.size() + kTagBytes);
  return out;
}

Result<std::string> AeadKey::Open(std::string_view sealed, std::string_view ad) const {
  CUSTOS_CHECK(k_ != nullptr);
  if (sealed.size() < kNonceBytes + kTagBytes) {
    return Status(Reason::kLogCorrupt, "sealed payload is too short");
  }
  const auto* s = reinterpret_cast<const uint8_t*>(sealed.data());
  std::string out(sealed.size() - kNonceBytes - kTagBytes, '\0');
  unsigned long long mlen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<uint8_t*>(out.data()), &mlen, nullptr, s + kNonceBytes,
          sealed.size() - kNonceBytes, reinterpret_cast<const uint8_t*>(ad.data()), ad.size(), s,
          k_) != 0) {
    return Status(Reason::kLogCorrupt, "sealed payload does not authenticate");
  }
  return out;
}

}  // namespace custos::crypto
