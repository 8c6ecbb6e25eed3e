#include "custos/caps/public_key.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include <array>
#include <memory>

#include "custos/core/encoding.h"
#include "custos/crypto/random.h"

namespace custos::caps {
namespace {

constexpr size_t kEd25519KeyBytes = 32;
constexpr size_t kEd25519SignatureBytes = 64;
constexpr size_t kP256CompressedKeyBytes = 33;
constexpr size_t kSecretBytes = 32;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_clear_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Loads a P-256 key from its SEC1 point and, if `secret` is not empty, its private scalar.
// OpenSSL decodes the point, so a point off the curve yields nullptr.
Pkey LoadP256(std::span<const uint8_t> point, std::span<const uint8_t> secret) {
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld) {
    return nullptr;
  }
  static char kGroup[] = "prime256v1";
  if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, kGroup, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return nullptr;
  }
  std::unique_ptr<BIGNUM, BnFree> priv;
  if (!secret.empty()) {
    priv.reset(BN_secure_new());
    if (!priv || BN_bin2bn(secret.data(), static_cast<int>(secret.size()), priv.get()) == nullptr ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv.get()) != 1) {
      return nullptr;
    }
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) {
    return nullptr;
  }
  EVP_PKEY* pkey = nullptr;
  const int selection = secret.empty() ? EVP_PKEY_PUBLIC_KEY : EVP_PKEY_KEYPAIR;
  if (EVP_PKEY_fromdata(ctx.get(), &pkey, selection, params.get()) != 1) {
    return nullptr;
  }
  return Pkey(pkey);
}

FormatError VerifyP256(std::span<const uint8_t> point, std::span<const uint8_t> message,
                       std::span<const uint8_t> signature) {
  // Biscuit carries ECDSA signatures DER-encoded; anything else is a deserialization error, not a
  // failed verification.
  const unsigned char* p = signature.data();
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> parsed(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(signature.size())));
  if (!parsed || p != signature.data() + signature.size()) {
    return FormatError::kBlockSignatureDeserialization;
  }
  Pkey key = LoadP256(point, {});
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
  if (!key || !md) {
    return FormatError::kInvalidKey;
  }
  if (EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) {
    return FormatError::kInvalidKey;
  }
  return EVP_DigestVerify(md.get(), signature.data(), signature.size(), message.data(),
                          message.size()) == 1
             ? FormatError::kNone
             : FormatError::kInvalidSignature;
}

std::string_view AlgorithmName(Algorithm a) {
  return a == Algorithm::kEd25519 ? "ed25519" : "secp256r1";
}

}  // namespace

Result<PublicKey> PublicKey::FromBytes(Algorithm algorithm, std::span<const uint8_t> bytes) {
  switch (algorithm) {
    case Algorithm::kEd25519:
      if (bytes.size() != kEd25519KeyBytes) {
        return FormatErrorStatus(
            FormatError::kInvalidKey,
            "an ed25519 public key has 32 bytes, got " + std::to_string(bytes.size()));
      }
      break;
    case Algorithm::kSecp256r1:
      if (bytes.size() != kP256CompressedKeyBytes || !LoadP256(bytes, {})) {
        return FormatErrorStatus(FormatError::kInvalidKey,
                                 "not a compressed secp256r1 point on the curve");
      }
      break;
    default:
      return FormatErrorStatus(FormatError::kInvalidKey, "unknown key algorithm");
  }
  return PublicKey(algorithm, std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

Result<PublicKey> PublicKey::FromString(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return FormatErrorStatus(FormatError::kInvalidKey, "expected <algorithm>/<hex>");
  }
  const std::string_view name = text.substr(0, slash);
  Algorithm algorithm;
  if (name == "ed25519") {
    algorithm = Algorithm::kEd25519;
  } else if (name == "secp256r1") {
    algorithm = Algorithm::kSecp256r1;
  } else {
    return FormatErrorStatus(FormatError::kInvalidKey, "unknown key algorithm");
  }
  Result<std::vector<uint8_t>> bytes = HexDecode(text.substr(slash + 1));
  if (!bytes.ok()) {
    return FormatErrorStatus(FormatError::kInvalidKey, "key is not hex");
  }
  return FromBytes(algorithm, *bytes);
}

std::string PublicKey::ToString() const {
  std::string out(AlgorithmName(algorithm_));
  out += '/';
  out += HexEncode(bytes_);
  return out;
}

FormatError PublicKey::Verify(std::span<const uint8_t> message,
                              std::span<const uint8_t> signature) const {
  if (algorithm_ == Algorithm::kSecp256r1) {
    return VerifyP256(bytes_, message, signature);
  }
  if (signature.size() != kEd25519SignatureBytes) {
    return FormatError::kBlockSignatureDeserialization;
  }
  crypto::EnsureSodium();
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                     bytes_.data()) == 0
             ? FormatError::kNone
             : FormatError::kInvalidSignature;
}

bool SecretMatchesPublicKey(std::span<const uint8_t> secret, const PublicKey& key) {
  if (secret.size() != kSecretBytes) {
    return false;
  }
  if (key.algorithm() == Algorithm::kSecp256r1) {
    Pkey pair = LoadP256(key.bytes(), secret);
    if (!pair) {
      return false;
    }
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
        EVP_PKEY_CTX_new_from_pkey(nullptr, pair.get(), nullptr));
    return ctx && EVP_PKEY_pairwise_check(ctx.get()) == 1;
  }
  crypto::EnsureSodium();
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<uint8_t, crypto_sign_SECRETKEYBYTES> sk{};
  const bool derived = crypto_sign_seed_keypair(pk.data(), sk.data(), secret.data()) == 0;
  sodium_memzero(sk.data(), sk.size());
  return derived && sodium_memcmp(pk.data(), key.bytes().data(), pk.size()) == 0;
}

}  // namespace custos::caps
