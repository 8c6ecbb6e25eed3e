#pragma once
// Byte encodings used in ids, keys and the log: lowercase hex, RFC 4648 base32 (lowercase, no
// padding; used for handle ids), and standard base64 with padding (signed notes, payloads).
// Decoders reject any character outside the alphabet (so hex and base32 decoding reject
// uppercase), any non-canonical padding and non-zero trailing bits: each byte string has exactly
// one accepted encoding. Decode errors are kInvalidArgument.
//
// Thread-safe: free functions.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/result.h"

namespace custos {

std::string HexEncode(std::span<const uint8_t> bytes);
// The value of one hex digit (either case), or -1 if `c` is not one.
int HexDigitValue(char c);
Result<std::vector<uint8_t>> HexDecode(std::string_view hex);

std::string Base32Encode(std::span<const uint8_t> bytes);  // lowercase a-z2-7, unpadded
Result<std::vector<uint8_t>> Base32Decode(std::string_view s);

std::string Base64Encode(std::span<const uint8_t> bytes);
Result<std::vector<uint8_t>> Base64Decode(std::string_view s);

inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace custos
