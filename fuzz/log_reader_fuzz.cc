// libFuzzer target: the flight-log readers that take files from outside the kernel — a JSONL export
// handed to `custos audit verify --jsonl`, and a stored row's canonical text. Bad data must end in
// a precise error (VerifyReport or Status); nothing here may crash, hang or read out of bounds.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "custos/audit/log_entry.h"
#include "custos/audit/verifier.h"
#include "custos/store/store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)audit::VerifyJsonl(text);

  store::LogRow row;
  row.seq = 1;
  row.canonical = std::string(text);
  auto entry = audit::DecodeEntry(row);
  if (entry.ok()) {
    // A decoded entry re-encodes; encoding must not crash on anything decoding accepted.
    (void)audit::EncodeCanonical(*entry);
  }
  return 0;
}
