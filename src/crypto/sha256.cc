#include "custos/crypto/sha256.h"

#include <openssl/evp.h>

#include <memory>

#include "custos/core/encoding.h"
#include "custos/core/status.h"

namespace custos::crypto {
namespace {

// Fetched once: an implicit fetch per call (EVP_sha256() in EVP_Digest) costs a provider lookup.
const EVP_MD* Sha256Md() {
  static const EVP_MD* const md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    CUSTOS_CHECK(m != nullptr);
    return m;
  }();
  return md;
}

struct CtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

void InitCtx(EVP_MD_CTX* c) { CUSTOS_CHECK(EVP_DigestInit_ex2(c, Sha256Md(), nullptr) == 1); }

void FinishCtx(EVP_MD_CTX* c, Digest* d) {
  unsigned int len = 0;
  CUSTOS_CHECK(EVP_DigestFinal_ex(c, d->bytes.data(), &len) == 1);
  CUSTOS_CHECK(len == d->bytes.size());
}

}  // namespace

std::string Digest::Hex() const { return HexEncode(bytes); }

Digest Sha256(std::span<const uint8_t> data) {
  // One context per thread, re-initialised per call: saves the allocation EVP_Digest makes.
  thread_local std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx(EVP_MD_CTX_new());
  CUSTOS_CHECK(ctx != nullptr);
  InitCtx(ctx.get());
  CUSTOS_CHECK(EVP_DigestUpdate(ctx.get(), data.data(), data.size()) == 1);
  Digest d;
  FinishCtx(ctx.get(), &d);
  return d;
}

Digest Sha256(std::string_view data) { return Sha256(AsBytes(data)); }

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  CUSTOS_CHECK(ctx_ != nullptr);
  InitCtx(static_cast<EVP_MD_CTX*>(ctx_));
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256Hasher::Update(std::span<const uint8_t> data) {
  CUSTOS_CHECK(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) == 1);
}

void Sha256Hasher::Update(std::string_view data) { Update(AsBytes(data)); }

Digest Sha256Hasher::Finish() {
  auto* c = static_cast<EVP_MD_CTX*>(ctx_);
  Digest d;
  FinishCtx(c, &d);
  InitCtx(c);  // ready for the next message
  return d;
}

}  // namespace custos::crypto
