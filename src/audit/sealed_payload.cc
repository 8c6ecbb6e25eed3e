#include "custos/audit/sealed_payload.h"

#include "custos/crypto/sha256.h"

namespace custos::audit {

crypto::AeadKey DerivePayloadKey(const crypto::SigningKey& identity) {
  return crypto::AeadKey::DeriveFrom(identity, kPayloadKeyPurpose);
}

std::string SealPayload(const crypto::AeadKey& key, std::string_view bytes,
                        std::string_view req_hash) {
  return key.Seal(bytes, req_hash);
}

Result<std::string> OpenPayload(const crypto::AeadKey& key, const LogEntry& entry,
                                std::string_view sealed) {
  Result<std::string> plain = key.Open(sealed, entry.req_hash);
  if (!plain.ok()) {
    return Status(Reason::kPayloadUnreadable,
                  "the payload of log entry " + std::to_string(entry.seq) +
                      " does not open with this identity (another key, or it was changed)");
  }
  if (crypto::Sha256(*plain).Hex() != entry.req_hash) {
    return Status(Reason::kLogCorrupt, "the payload of log entry " + std::to_string(entry.seq) +
                                           " does not hash to the entry's req_hash");
  }
  return plain;
}

}  // namespace custos::audit
