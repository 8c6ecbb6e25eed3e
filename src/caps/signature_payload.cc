#include "caps/signature_payload.h"

#include <string_view>

namespace custos::caps::internal {
namespace {

void Append(std::vector<uint8_t>& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
}
void Append(std::vector<uint8_t>& out, std::span<const uint8_t> s) {
  out.insert(out.end(), s.begin(), s.end());
}
void AppendLe32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
}

}  // namespace

std::vector<uint8_t> BlockSignaturePayloadV1(std::span<const uint8_t> payload,
                                             const PublicKey& next_key,
                                             std::span<const uint8_t> previous_sig, bool authority,
                                             const std::vector<uint8_t>* external_signature) {
  std::vector<uint8_t> out;
  Append(out, std::string_view("\0BLOCK\0\0VERSION\0", 16));
  AppendLe32(out, 1);
  Append(out, std::string_view("\0PAYLOAD\0", 9));
  Append(out, payload);
  Append(out, std::string_view("\0ALGORITHM\0", 11));
  AppendLe32(out, static_cast<uint32_t>(next_key.algorithm()));
  Append(out, std::string_view("\0NEXTKEY\0", 9));
  Append(out, next_key.bytes());
  if (!authority) {
    Append(out, std::string_view("\0PREVSIG\0", 9));
    Append(out, previous_sig);
    if (external_signature != nullptr) {
      Append(out, std::string_view("\0EXTERNALSIG\0", 13));
      Append(out, *external_signature);
    }
  }
  return out;
}

std::vector<uint8_t> BlockSignaturePayload(const Block& b, std::span<const uint8_t> previous_sig,
                                           bool authority) {
  if (b.signature_version == 0) {
    std::vector<uint8_t> out;
    Append(out, b.payload);
    Append(out, b.external_signature);
    AppendLe32(out, static_cast<uint32_t>(b.next_key.algorithm()));
    Append(out, b.next_key.bytes());
    return out;
  }
  return BlockSignaturePayloadV1(b.payload, b.next_key, previous_sig, authority,
                                 b.external_key ? &b.external_signature : nullptr);
}

std::vector<uint8_t> ExternalSignaturePayload(const Block& b,
                                              std::span<const uint8_t> previous_sig) {
  std::vector<uint8_t> out;
  Append(out, std::string_view("\0EXTERNAL\0\0VERSION\0", 19));
  AppendLe32(out, b.signature_version);
  Append(out, std::string_view("\0PAYLOAD\0", 9));
  Append(out, b.payload);
  Append(out, std::string_view("\0PREVSIG\0", 9));
  Append(out, previous_sig);
  return out;
}

std::vector<uint8_t> SealPayload(const Block& b) {
  std::vector<uint8_t> out;
  Append(out, b.payload);
  AppendLe32(out, static_cast<uint32_t>(b.next_key.algorithm()));
  Append(out, b.next_key.bytes());
  Append(out, b.signature);
  return out;
}

}  // namespace custos::caps::internal
