#pragma once
// The text form of a Biscuit token, as it travels in a syscall's `token` field, on the command line
// and over HTTP: the serialized token in URL-safe base64 (RFC 4648 §5) with `=` padding, as the
// Biscuit reference tools print it. DecodeToken also accepts the unpadded form and surrounding
// ASCII whitespace (a token pasted from a terminal), and nothing else.
//
// Errors: kPayloadTooLarge when the text could hold more than Biscuit::kMaxTokenBytes (checked
// before decoding anything), kTokenInvalid for an empty text or any character outside the
// alphabet, misplaced padding or a length no encoding produces.
//
// Thread-safe: pure functions.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "custos/core/result.h"

namespace custos::caps {

std::string EncodeToken(std::span<const uint8_t> token);
Result<std::vector<uint8_t>> DecodeToken(std::string_view text);

}  // namespace custos::caps
