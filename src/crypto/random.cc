#include "custos/crypto/random.h"

#include <sodium.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "custos/core/encoding.h"

namespace custos::crypto {

void EnsureSodium() {
  static const bool ready = [] {
    if (sodium_init() < 0) {
      std::fputs("custos: libsodium failed to initialise (no entropy source?)\n", stderr);
      std::abort();
    }
    return true;
  }();
  (void)ready;
}

void RandomBytes(std::span<uint8_t> out) {
  EnsureSodium();
  if (out.empty())
    return;  // data() may be null, which randombytes_buf must not be given
  randombytes_buf(out.data(), out.size());
}

std::string RandomId(std::string_view prefix) {
  std::array<uint8_t, 16> bits;
  RandomBytes(bits);
  std::string id(prefix);
  id += Base32Encode(bits);
  return id;
}

}  // namespace custos::crypto
