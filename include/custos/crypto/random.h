#pragma once
// Cryptographically secure randomness (libsodium randombytes). Thread-safe.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace custos::crypto {

// Initialises libsodium once; every crypto entry point calls it. Aborts if libsodium cannot start
// (no entropy source): nothing secure can be done then.
void EnsureSodium();

void RandomBytes(std::span<uint8_t> out);

// `prefix` + 26 lowercase base32 characters = 128 random bits, e.g. RandomId("h_") for handles.
std::string RandomId(std::string_view prefix);

}  // namespace custos::crypto
