#pragma once
// Sealed payloads of the flight log (docs/spec/flight-log.md "Sealed payloads"): the raw request
// bytes of a decision are kept beside its row, encrypted with XChaCha20-Poly1305 under a key
// derived from the kernel identity (BLAKE2b keyed by the identity seed, purpose "payloads"), with
// the entry's req_hash as associated data, so a payload cannot be moved to another entry. Only
// the holder of the identity can open them; `inspect` and `export` never do.
//
// Thread-compatible.

#include <string>
#include <string_view>

#include "custos/audit/log_entry.h"
#include "custos/core/result.h"
#include "custos/crypto/keys.h"

namespace custos::audit {

inline constexpr char kPayloadKeyPurpose[] = "payloads";

crypto::AeadKey DerivePayloadKey(const crypto::SigningKey& identity);
// Seals `bytes` for an entry whose req_hash is `req_hash`.
std::string SealPayload(const crypto::AeadKey& key, std::string_view bytes,
                        std::string_view req_hash);
// Opens the payload of `entry`. kPayloadUnreadable if it does not open under `key` (another
// identity, or the payload or entry changed); kLogCorrupt if it opens but does not hash to the
// entry's req_hash.
Result<std::string> OpenPayload(const crypto::AeadKey& key, const LogEntry& entry,
                                std::string_view sealed);

}  // namespace custos::audit
