// libFuzzer target: the checkpoint readers — signed notes (`audit consistency OLD`,
// `audit verify --from-checkpoint`), checkpoint bodies, and verifier key strings from a
// --trusted-keys file. Every input is attacker-controlled text; each must end in a precise error or
// a parsed value, and OpenCheckpoint must never accept a note that no known key signed.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/crypto/keys.h"

namespace {

using namespace custos;

const std::vector<audit::NoteVerifier>& Known() {
  static const std::vector<audit::NoteVerifier> known = [] {
    // A key generated in this process: the fuzzer cannot sign with it, so nothing may verify.
    auto key = crypto::SigningKey::Generate().value();
    return std::vector<audit::NoteVerifier>{
        audit::MakeNoteVerifier("fuzz.custos.local", key.verifying_key()).value()};
  }();
  return known;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)audit::ParseCheckpointBody(text);
  (void)audit::ParseSignedNote(text);
  (void)audit::ParseVerifierKeyString(text);
  auto opened = audit::OpenCheckpoint(text, Known());
  if (opened.ok()) {
    // Only a key generated in this process is known, and the fuzzer cannot sign with it: any
    // success is a forged checkpoint accepted.
    std::abort();
  }
  return 0;
}
