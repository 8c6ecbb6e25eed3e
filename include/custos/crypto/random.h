#pragma once
// Cryptographically secure randomness (libsodium randombytes). Thread-safe.

#include <cstdint>
#include <span>
#include <string>

namespace custos::crypto {

// Initialises libsodium once; every crypto entry point calls it. Aborts if libsodium cannot start
// (no entropy source): nothing secure can be done then.
void EnsureSodium();

void RandomBytes(std::span<uint8_t> out);

// "h_" + 26 lowercase base32 characters = 128 random bits. Used for handles and ids.
std::string RandomId(std::string_view prefix);

}  // namespace custos::crypto
