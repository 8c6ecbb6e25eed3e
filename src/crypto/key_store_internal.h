#pragma once
// KeyStore internals shared with its tests. Not part of the public API.

#include <cstddef>
#include <cstdint>

namespace custos::crypto::internal {

// Argon2id cost used by KeyStore::Save for new encrypted files. Defaults to libsodium's MODERATE
// (opslimit 3, memlimit 256 MiB: about a second, on purpose). Load always uses the limits recorded
// in the file, bounded to [MIN, SENSITIVE].
struct KdfLimits {
  uint64_t opslimit;
  size_t memlimit;
};

KdfLimits SaveKdfLimits();

// Tests set cheap limits (e.g. OPSLIMIT_MIN/MEMLIMIT_MIN) so that a round trip takes
// milliseconds. Thread-safe (atomic); returns the previous value.
KdfLimits SetSaveKdfLimitsForTest(KdfLimits limits);

}  // namespace custos::crypto::internal
