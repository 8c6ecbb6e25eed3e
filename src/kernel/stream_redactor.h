#pragma once
// StreamRedactor turns output that arrives in pieces into redacted text that is safe to show
// before the output is complete (INV-6). It keeps the bytes not yet emitted; on each Feed() it may
// emit a prefix of them, redacted, but never a prefix an occurrence of a secret could continue
// past: when no secret contains a line feed (SecretScanner::SpansLines()), it emits every
// complete line at once (no occurrence in any spelling crosses a line end); otherwise, or for a
// line longer than kMaxLineHold, it holds back the last MaxSpanBytes() bytes (where an occurrence
// the next bytes could complete must start), preferring to cut after a newline. It never cuts
// inside an occurrence found in what it holds. Finish() emits the rest, redacted as a whole. At
// most `max_bytes` of redacted text is emitted in all; after that it only counts. The emitted
// pieces, concatenated, are the redaction of the whole output (up to the cap).
//
// Confined: one effect's thread.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "custos/effects/secret_scanner.h"

namespace custos::kernel {

class StreamRedactor {
 public:
  static constexpr size_t kMaxLineHold = 4096;

  // REQUIRES: `scanner` outlives the redactor.
  StreamRedactor(const effects::SecretScanner& scanner, size_t max_bytes,
                 std::function<void(std::string_view)> emit)
      : scanner_(scanner), max_bytes_(max_bytes), emit_(std::move(emit)) {}

  void Feed(std::string_view bytes);
  void Finish();

 private:
  void Emit(std::string_view raw);

  const effects::SecretScanner& scanner_;
  size_t max_bytes_;
  std::function<void(std::string_view)> emit_;
  std::string held_;
  size_t emitted_ = 0;
};

}  // namespace custos::kernel
