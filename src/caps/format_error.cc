#include "custos/caps/format_error.h"

namespace custos::caps {

std::string_view FormatErrorName(FormatError e) {
  switch (e) {
    case FormatError::kNone:
      return "none";
    case FormatError::kDeserialization:
      return "deserialization";
    case FormatError::kBlockSignatureDeserialization:
      return "block_signature_deserialization";
    case FormatError::kInvalidSignature:
      return "invalid_signature";
    case FormatError::kInvalidKey:
      return "invalid_key";
    case FormatError::kUnknownRootKey:
      return "unknown_root_key";
    case FormatError::kUnsupportedVersion:
      return "unsupported_version";
    case FormatError::kSymbolTableOverlap:
      return "symbol_table_overlap";
    case FormatError::kPayloadTooLarge:
      return "payload_too_large";
    case FormatError::kExternalSignatureOnAuthority:
      return "external_signature_on_authority";
  }
  return "unknown";
}

Status FormatErrorStatus(FormatError e, std::string_view detail, std::string at) {
  CUSTOS_CHECK(e != FormatError::kNone);
  const Reason reason =
      e == FormatError::kPayloadTooLarge ? Reason::kPayloadTooLarge : Reason::kTokenInvalid;
  std::string message(FormatErrorName(e));
  message += ": ";
  message += detail;
  return Status(reason, std::move(message), std::move(at));
}

}  // namespace custos::caps
