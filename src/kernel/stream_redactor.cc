#include "kernel/stream_redactor.h"

#include <algorithm>

namespace custos::kernel {

void StreamRedactor::Emit(std::string_view raw) {
  if (raw.empty() || emitted_ >= max_bytes_)
    return;
  std::string text = scanner_.Redact(raw);
  if (text.size() > max_bytes_ - emitted_)
    text.resize(max_bytes_ - emitted_);  // a cut redaction marker shows no secret bytes
  emitted_ += text.size();
  emit_(text);
}

void StreamRedactor::Feed(std::string_view bytes) {
  if (emitted_ >= max_bytes_)
    return;
  held_.append(bytes);
  size_t cut = 0;
  const size_t nl = held_.rfind('\n');
  if (nl != std::string::npos && !scanner_.SpansLines()) {
    // No secret contains a line feed, so no occurrence crosses a line end: whole lines go now.
    cut = nl + 1;
  } else {
    const size_t window = scanner_.MaxSpanBytes();
    if (held_.size() <= window)
      return;
    cut = held_.size() - window;  // >= 1
    // Prefer whole lines: cut after the last newline before `cut`, unless the line is too long.
    if (const size_t before = held_.rfind('\n', cut - 1); before != std::string::npos) {
      cut = before + 1;
    } else if (cut < kMaxLineHold) {
      return;
    }
  }
  // Never cut inside an occurrence that is complete in what is held (spans are disjoint, so the
  // start of one is outside every other).
  for (const auto& [begin, end] : scanner_.Spans(held_)) {
    if (begin < cut && cut < end) {
      cut = begin;
      break;
    }
  }
  if (cut == 0)
    return;
  Emit(std::string_view(held_).substr(0, cut));
  held_.erase(0, cut);
}

void StreamRedactor::Finish() {
  Emit(held_);
  held_.clear();
}

}  // namespace custos::kernel
