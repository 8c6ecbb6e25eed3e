#include "custos/mcp/access_token.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include <algorithm>
#include <limits>
#include <mutex>

namespace custos::mcp {

struct AccessTokenVerifier::Key {
  std::string kid;
  std::string alg;      // "EdDSA" | "ES256"
  std::string ed25519;  // 32 bytes
  EVP_PKEY* ec = nullptr;
  ~Key() { EVP_PKEY_free(ec); }
};

struct AccessTokenVerifier::KeySet {
  std::mutex fetch_mu;  // one fetch at a time
  std::mutex mu;        // guards the rest
  Keys keys;
  int64_t loaded_at = 0;
  int64_t tried_at = std::numeric_limits<int64_t>::min() / 2;
  std::string error;  // why the last fetch failed, "" once one worked
};

namespace {

Status Invalid(std::string why) { return Status(Reason::kMcpTokenInvalid, std::move(why)); }

// P-256 public key from the JWK's x and y (32 bytes each).
EVP_PKEY* EcKey(const std::string& x, const std::string& y) {
  std::string point = "\x04" + x + y;
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (bld == nullptr)
    return nullptr;
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx != nullptr && params != nullptr && EVP_PKEY_fromdata_init(ctx) == 1)
    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return key;
}

// ES256: the JWS signature is r || s (32 bytes each); OpenSSL wants DER.
bool VerifyEs256(EVP_PKEY* key, std::string_view msg, const std::string& sig) {
  if (sig.size() != 64)
    return false;
  ECDSA_SIG* s = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr);
  BIGNUM* ss = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr);
  if (s == nullptr || r == nullptr || ss == nullptr || ECDSA_SIG_set0(s, r, ss) != 1) {
    ECDSA_SIG_free(s);
    return false;
  }
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(s, &der);
  ECDSA_SIG_free(s);
  if (der_len <= 0)
    return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, der, static_cast<size_t>(der_len),
                             reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  return ok;
}

}  // namespace

std::string Base64UrlEncode(std::string_view bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buf = (buf << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(buf >> bits) & 63];
    }
  }
  if (bits > 0)
    out += kAlphabet[(buf << (6 - bits)) & 63];
  return out;
}

Result<std::string> Base64UrlDecode(std::string_view text) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else {
      return Invalid("not base64url");
    }
    buf = (buf << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xff);
    }
  }
  if (text.size() % 4 == 1)
    return Invalid("not base64url");
  return out;
}

namespace {

// The usable keys of a JWKS. A key of a type the verifier does not support is an error in an
// operator's file, and skipped in a document fetched from the issuer (which may publish RSA keys
// for other clients).
Result<std::vector<std::shared_ptr<const AccessTokenVerifier::Key>>> ParseKeys(
    const Json& jwks, bool skip_unsupported) {
  if (!jwks.is_object() || !jwks.contains("keys") || !jwks["keys"].is_array())
    return Status(Reason::kMcpConfigError, "the JWKS has no \"keys\" array");
  std::vector<std::shared_ptr<const AccessTokenVerifier::Key>> keys;
  for (const Json& j : jwks["keys"]) {
    if (!j.is_object())
      return Status(Reason::kMcpConfigError, "a JWKS key is not an object");
    auto key = std::make_shared<AccessTokenVerifier::Key>();
    key->kid = j.value("kid", "");
    const std::string kty = j.value("kty", ""), crv = j.value("crv", "");
    const bool ed = kty == "OKP" && crv == "Ed25519", ec = kty == "EC" && crv == "P-256";
    if (!ed && !ec) {
      if (skip_unsupported)
        continue;
      return Status(Reason::kMcpConfigError,
                    "JWKS key '" + key->kid + "': only OKP/Ed25519 and EC/P-256 are supported");
    }
    Result<std::string> x = Base64UrlDecode(j.value("x", ""));
    if (!x.ok())
      return Status(Reason::kMcpConfigError, "JWKS key '" + key->kid + "': bad x");
    if (ed) {
      if (x->size() != crypto_sign_PUBLICKEYBYTES)
        return Status(Reason::kMcpConfigError, "JWKS key '" + key->kid + "': bad Ed25519 key");
      key->alg = "EdDSA";
      key->ed25519 = *x;
    } else {
      Result<std::string> y = Base64UrlDecode(j.value("y", ""));
      if (!y.ok() || x->size() != 32 || y->size() != 32)
        return Status(Reason::kMcpConfigError, "JWKS key '" + key->kid + "': bad P-256 point");
      key->alg = "ES256";
      key->ec = EcKey(*x, *y);
      if (key->ec == nullptr)
        return Status(Reason::kMcpConfigError, "JWKS key '" + key->kid + "': not on P-256");
    }
    keys.push_back(std::move(key));
  }
  if (keys.empty())
    return Status(Reason::kMcpConfigError, "the JWKS has no usable keys");
  return keys;
}

}  // namespace

Result<AccessTokenVerifier> AccessTokenVerifier::Create(AccessTokenConfig config, int64_t now_s) {
  if (sodium_init() < 0)
    return Status(Reason::kInternal, "libsodium failed to initialise");
  if (config.resource.empty() || config.issuer.empty())
    return Status(Reason::kMcpConfigError, "[http.auth] needs resource and issuer");
  AccessTokenVerifier v;
  v.keys_ = std::make_shared<KeySet>();
  if (!config.fetch_jwks) {
    CUSTOS_ASSIGN_OR_RETURN(v.keys_->keys, ParseKeys(config.jwks, false));
  }
  v.config_ = std::move(config);
  if (v.config_.fetch_jwks)
    v.Reload(now_s);
  return v;
}

bool AccessTokenVerifier::Reload(int64_t now_s) const {
  if (!config_.fetch_jwks)
    return false;
  std::lock_guard fetching(keys_->fetch_mu);
  {
    std::lock_guard lock(keys_->mu);
    if (now_s - keys_->tried_at < config_.retry_s)
      return false;  // tried (or is being tried) recently
    keys_->tried_at = now_s;
  }
  Result<std::string> doc = config_.fetch_jwks();
  Result<Json> jwks = doc.ok() ? ParseUntrustedJson(*doc) : Result<Json>(doc.status());
  Result<Keys> keys = jwks.ok() ? ParseKeys(*jwks, true) : Result<Keys>(jwks.status());
  std::lock_guard lock(keys_->mu);
  if (!keys.ok()) {
    keys_->error = "the issuer's JWKS could not be loaded: " + std::string(keys.status().message());
    return false;
  }
  keys_->keys = std::move(keys).value();
  keys_->loaded_at = now_s;
  keys_->error.clear();
  return true;
}

Result<AccessToken> AccessTokenVerifier::Verify(std::string_view token, int64_t now_s) const {
  if (token.size() > 16 * 1024)
    return Invalid("token too long");
  const size_t d1 = token.find('.');
  const size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return Invalid("not a JWS compact token");
  CUSTOS_ASSIGN_OR_RETURN(std::string header_text, Base64UrlDecode(token.substr(0, d1)));
  CUSTOS_ASSIGN_OR_RETURN(std::string payload_text,
                          Base64UrlDecode(token.substr(d1 + 1, d2 - d1 - 1)));
  CUSTOS_ASSIGN_OR_RETURN(std::string sig, Base64UrlDecode(token.substr(d2 + 1)));
  Result<Json> header = ParseUntrustedJson(header_text);
  if (!header.ok() || !header->is_object())
    return Invalid("token header is not a JSON object");
  const std::string alg = header->value("alg", "");
  if (alg != "ES256" && alg != "EdDSA")
    return Invalid("token alg '" + alg.substr(0, 16) + "' is not ES256 or EdDSA");
  const std::string kid = header->contains("kid") && (*header)["kid"].is_string()
                              ? (*header)["kid"].get<std::string>()
                              : "";
  const std::string_view signed_part = token.substr(0, d2);
  auto current = [this] {
    std::lock_guard lock(keys_->mu);
    return std::make_pair(keys_->keys, keys_->loaded_at);
  };
  auto [keys, loaded_at] = current();
  auto matches = [&](const Keys& ks) {
    return std::any_of(ks.begin(), ks.end(), [&](const std::shared_ptr<const Key>& k) {
      return k->alg == alg && (kid.empty() || k->kid == kid);
    });
  };
  // Stale keys are refreshed, and a key the set lacks may be a rotation: fetch (rate-limited).
  if (config_.fetch_jwks && (now_s - loaded_at >= config_.refresh_s || !matches(keys)) &&
      Reload(now_s)) {
    keys = current().first;
  }
  bool verified = false;
  bool found = false;
  for (const auto& k : keys) {
    if (k->alg != alg || (!kid.empty() && k->kid != kid))
      continue;
    found = true;
    if (alg == "EdDSA") {
      verified = sig.size() == crypto_sign_BYTES &&
                 crypto_sign_verify_detached(
                     reinterpret_cast<const unsigned char*>(sig.data()),
                     reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(),
                     reinterpret_cast<const unsigned char*>(k->ed25519.data())) == 0;
    } else {
      verified = VerifyEs256(k->ec, signed_part, sig);
    }
    if (verified)
      break;
  }
  if (!found) {
    std::string why = "no key of the issuer's JWKS matches the token's kid/alg";
    std::lock_guard lock(keys_->mu);
    if (!keys_->error.empty())
      why += " (" + keys_->error + ")";
    return Invalid(why);
  }
  if (!verified)
    return Invalid("token signature does not verify");
  Result<Json> claims = ParseUntrustedJson(payload_text);
  if (!claims.ok() || !claims->is_object())
    return Invalid("token claims are not a JSON object");
  const Json& c = *claims;
  bool aud_ok = false;
  if (c.contains("aud")) {
    if (c["aud"].is_string()) {
      aud_ok = c["aud"] == config_.resource;
    } else if (c["aud"].is_array()) {
      for (const Json& a : c["aud"])
        aud_ok = aud_ok || (a.is_string() && a == config_.resource);
    }
  }
  if (!aud_ok)
    return Invalid("token audience is not " + config_.resource);
  if (!c.contains("iss") || !c["iss"].is_string() || c["iss"] != config_.issuer)
    return Invalid("token issuer is not " + config_.issuer);
  if (!c.contains("exp") || !c["exp"].is_number_integer())
    return Invalid("token has no exp");
  if (c["exp"].get<int64_t>() + config_.leeway_s <= now_s)
    return Invalid("token expired");
  if (c.contains("nbf")) {
    if (!c["nbf"].is_number_integer() || c["nbf"].get<int64_t>() - config_.leeway_s > now_s)
      return Invalid("token not valid yet (nbf)");
  }
  AccessToken t;
  t.subject = c.contains("sub") && c["sub"].is_string() ? c["sub"].get<std::string>() : "";
  t.scope = c.contains("scope") && c["scope"].is_string() ? c["scope"].get<std::string>() : "";
  t.claims = c;
  return t;
}

}  // namespace custos::mcp
