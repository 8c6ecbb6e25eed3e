#pragma once
// Reason is the stable vocabulary of why a call failed or a syscall was decided the way it was.
// The same snake_case name appears in the library, the CLI (exit codes by class), the wire API
// ({"error":{"reason":...}}) and every flight-log entry.
//
// Numbers are append-only and never reused: add a new row at the end of its block, never renumber.
// docs/reason-codes.md is generated from this table (`custos reasons --markdown`) and a test checks
// the checked-in file is current.
//
// Choosing a reason (as Abseil does for codes): pick the most specific row. A caller that is not
// known at all is kUnknownAgent (unauthenticated), not a permission problem; an exhausted budget is
// kBudgetExhausted (resource_exhausted), never a policy deny.
//
// Thread-safe: everything here is constant data.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace custos {

// Coarse classes, Abseil-style. Each maps to one CLI exit code and a default HTTP status.
enum class ReasonClass : uint8_t {
  kOk = 0,
  kInvalidArgument = 1,
  kUnauthenticated = 2,
  kPermissionDenied = 3,
  kNotFound = 4,
  kAlreadyExists = 5,
  kFailedPrecondition = 6,
  kAborted = 7,
  kResourceExhausted = 8,
  kDeadlineExceeded = 9,
  kUnavailable = 10,
  kInternal = 11,
  kDataLoss = 12,
};

// X(enumerator, number, wire_name, class, http_status, one-line meaning)
#define CUSTOS_REASONS(X)                                                                         \
  X(kOk, 0, "ok", kOk, 200, "Success; for a decision, the syscall was allowed.")                  \
  X(kInternal, 1, "internal_error", kInternal, 500,                                               \
    "A bug or an unexpected environment failure; the syscall was denied (fail closed).")          \
  X(kMalformedJson, 10, "malformed_json", kInvalidArgument, 400,                                  \
    "The request is not well-formed JSON.")                                                       \
  X(kSchemaViolation, 11, "schema_violation", kInvalidArgument, 400,                              \
    "A field is missing or has the wrong type; `at` names it as a JSON pointer.")                 \
  X(kPayloadTooLarge, 12, "payload_too_large", kInvalidArgument, 413,                             \
    "The request or one of its values exceeds a size cap.")                                       \
  X(kInvalidUtf8, 13, "invalid_utf8", kInvalidArgument, 400, "A string is not valid UTF-8.")      \
  X(kNestingTooDeep, 14, "nesting_too_deep", kInvalidArgument, 400,                               \
    "JSON nesting exceeds the depth cap.")                                                        \
  X(kUnknownSyscall, 15, "unknown_syscall", kInvalidArgument, 400,                                \
    "The syscall kind is not one the kernel knows; denied.")                                      \
  X(kUnknownField, 16, "unknown_field", kInvalidArgument, 400,                                    \
    "The request has a field the schema does not define; denied rather than ignored.")            \
  X(kUnsupportedVersion, 17, "unsupported_version", kInvalidArgument, 400,                        \
    "The syscall envelope version `v` is not supported.")                                         \
  X(kInvalidArgument, 18, "invalid_argument", kInvalidArgument, 400,                              \
    "An argument is well-typed but its value is not acceptable (e.g. a bad path or URL).")        \
  X(kUnknownAgent, 30, "unknown_agent", kUnauthenticated, 401,                                    \
    "The agent named by the syscall is not registered in the policy or by a spawn.")              \
  X(kCapabilityMissing, 31, "capability_missing", kPermissionDenied, 403,                         \
    "The agent holds no capability for this syscall kind.")                                       \
  X(kTokenInvalid, 32, "token_invalid", kUnauthenticated, 401,                                    \
    "The presented capability token is malformed or its signature does not verify.")              \
  X(kTokenExpired, 33, "token_expired", kUnauthenticated, 401, "The capability token expired.")   \
  X(kTokenRevoked, 34, "token_revoked", kUnauthenticated, 401, "The capability was revoked.")     \
  X(kRunMismatch, 35, "run_mismatch", kPermissionDenied, 403,                                     \
    "The syscall's run does not match the run its agent or handle is bound to.")                  \
  X(kTokenMissing, 36, "token_missing", kUnauthenticated, 401,                                    \
    "The syscall carries no capability token; every syscall needs one.")                          \
  X(kTokenUsesExhausted, 37, "token_uses_exhausted", kResourceExhausted, 429,                     \
    "The capability token's max_uses caveat is used up.")                                         \
  X(kTokenRateLimited, 38, "token_rate_limited", kResourceExhausted, 429,                         \
    "The capability token's rate caveat allows no more uses in the current window.")              \
  X(kNoMatchingRule, 50, "no_matching_rule", kPermissionDenied, 403,                              \
    "No policy rule allows this action; default deny.")                                           \
  X(kDeniedByRule, 51, "denied_by_rule", kPermissionDenied, 403,                                  \
    "An explicit deny rule in the policy matched.")                                               \
  X(kPathNotAllowed, 52, "path_not_allowed", kPermissionDenied, 403,                              \
    "The canonical file path is outside every allowed glob.")                                     \
  X(kHostNotAllowed, 53, "host_not_allowed", kPermissionDenied, 403,                              \
    "The destination host/port/address is not allowed by net.connect.")                           \
  X(kToolNotAllowed, 54, "tool_not_allowed", kPermissionDenied, 403,                              \
    "The tool is denied or not on the allow list (unknown tools fail closed).")                   \
  X(kModelNotAllowed, 55, "model_not_allowed", kPermissionDenied, 403,                            \
    "The model is not on models.allow.")                                                          \
  X(kSecretNotAllowed, 56, "secret_not_allowed", kPermissionDenied, 403,                          \
    "This agent may not open this secret, or not for this destination.")                          \
  X(kApprovalRequired, 57, "approval_required", kPermissionDenied, 403,                           \
    "The policy requires a human approval for this action.")                                      \
  X(kApprovalDenied, 58, "approval_denied", kPermissionDenied, 403,                               \
    "A person denied the pending approval.")                                                      \
  X(kApprovalTimeout, 59, "approval_timeout", kDeadlineExceeded, 403,                             \
    "Nobody answered the pending approval in time; denied.")                                      \
  X(kTokenCheckFailed, 60, "token_check_failed", kPermissionDenied, 403,                          \
    "A check in the capability token failed; the explanation names the block and the check.")     \
  X(kFlowViolation, 70, "flow_violation", kPermissionDenied, 403,                                 \
    "An information-flow rule forbids inputs with these labels reaching this target.")            \
  X(kSecretInEgress, 71, "secret_in_egress", kPermissionDenied, 403,                              \
    "Outgoing bytes contain the value of a secret the kernel holds; blocked.")                    \
  X(kBudgetExhausted, 90, "budget_exhausted", kResourceExhausted, 429,                            \
    "The syscall could exceed a budget of its agent/run; refused before the effect.")             \
  X(kUnknownHandle, 110, "unknown_handle", kNotFound, 404, "No value has this handle.")           \
  X(kHandleExpired, 111, "handle_expired", kNotFound, 410, "The handle's value expired.")         \
  X(kForeignHandle, 112, "foreign_handle", kPermissionDenied, 403,                                \
    "The handle belongs to another agent or run.")                                                \
  X(kNotFound, 113, "not_found", kNotFound, 404, "The object, file or approval does not exist.")  \
  X(kVersionConflict, 114, "version_conflict", kAborted, 409,                                     \
    "Compare-and-swap failed: the object's version is not the expected one.")                     \
  X(kAlreadyExists, 115, "already_exists", kAlreadyExists, 409, "The object already exists.")     \
  X(kPathEscape, 116, "path_escape", kPermissionDenied, 403,                                      \
    "The path resolves (via .., a symlink or /proc) outside the allowed roots.")                  \
  X(kAddressNotAllowed, 117, "address_not_allowed", kPermissionDenied, 403,                       \
    "The resolved IP address is denied (link-local, metadata, or not allowed by policy).")        \
  X(kRedirectDenied, 118, "redirect_denied", kPermissionDenied, 403,                              \
    "An HTTP redirect was not followed: the effect does not follow redirects.")                   \
  X(kMailboxEmpty, 119, "mailbox_empty", kNotFound, 404, "No message is waiting for this agent.") \
  X(kEffectFailed, 130, "effect_failed", kUnavailable, 502,                                       \
    "The effect ran and failed (non-zero exit, HTTP error, I/O error).")                          \
  X(kEffectTimeout, 131, "effect_timeout", kDeadlineExceeded, 504, "The effect timed out.")       \
  X(kAssertionFailed, 132, "assertion_failed", kFailedPrecondition, 412,                          \
    "An `assert` syscall's condition does not hold.")                                             \
  X(kPolicyParseError, 150, "policy_parse_error", kInvalidArgument, 400,                          \
    "The policy file is not valid TOML/JSON.")                                                    \
  X(kPolicyUnknownKey, 151, "policy_unknown_key", kInvalidArgument, 400,                          \
    "The policy has a key the schema does not define.")                                           \
  X(kPolicyWrongType, 152, "policy_wrong_type", kInvalidArgument, 400,                            \
    "A policy value has the wrong type.")                                                         \
  X(kPolicyBadPattern, 153, "policy_bad_pattern", kInvalidArgument, 400,                          \
    "A glob, host pattern or CIDR in the policy is invalid.")                                     \
  X(kPolicyDuplicateRule, 154, "policy_duplicate_rule", kInvalidArgument, 400,                    \
    "Two policy rules share an id.")                                                              \
  X(kPolicyInvalid, 155, "policy_invalid", kInvalidArgument, 400,                                 \
    "The policy is well-formed but inconsistent (e.g. an unknown syscall in a rule).")            \
  X(kLogCorrupt, 170, "log_corrupt", kDataLoss, 500,                                              \
    "A log entry's hash or encoding does not verify: it was changed.")                            \
  X(kLogGap, 171, "log_gap", kDataLoss, 500,                                                      \
    "A log entry is missing, reordered or inserted: the sequence or chain is broken.")            \
  X(kStoreError, 172, "store_error", kUnavailable, 503, "The store failed a read or write.")      \
  X(kKeyError, 173, "key_error", kFailedPrecondition, 500,                                        \
    "A key is missing, malformed, weak, or has unsafe file permissions.")                         \
  X(kUnavailable, 174, "unavailable", kUnavailable, 503,                                          \
    "The kernel is shutting down or overloaded.")                                                 \
  X(kIoError, 175, "io_error", kUnavailable, 500, "A local file operation failed.")               \
  X(kNoCheckpoint, 176, "no_checkpoint", kFailedPrecondition, 412,                                \
    "No signed checkpoint covers what was asked (empty log, no signing key, or none stored).")    \
  X(kPayloadUnreadable, 177, "payload_unreadable", kPermissionDenied, 403,                        \
    "A sealed log payload does not open with this identity (wrong key, or it was changed).")      \
  X(kRotationInvalid, 178, "rotation_invalid", kDataLoss, 500,                                    \
    "A key rotation statement in the flight log does not verify (a signature by the old or new "  \
    "key, the chain of keys, or the tree it names).")                                             \
  X(kCheckpointWrongSigner, 179, "checkpoint_wrong_signer", kDataLoss, 500,                       \
    "A checkpoint is not signed by the key that was current at its tree size (e.g. the old key "  \
    "after a rotation).")                                                                         \
  X(kReplayFactUnknown, 185, "replay_fact_unknown", kFailedPrecondition, 412,                     \
    "Replay needs a fact about the world (a canonical path, a resolved address) that the "        \
    "recorded decision never observed.")                                                          \
  X(kReplayPolicyMismatch, 186, "replay_policy_mismatch", kFailedPrecondition, 412,               \
    "The entry was recorded under another policy than the one replayed (use fork-replay).")       \
  X(kReplayMismatch, 187, "replay_mismatch", kFailedPrecondition, 412,                            \
    "A replayed decision came out differently from the recorded one (determinism check).")        \
  X(kUnauthenticated, 200, "unauthenticated", kUnauthenticated, 401,                              \
    "custosd: the request carries no valid credentials (API key, or a mapped socket peer).")      \
  X(kIdentityMismatch, 201, "identity_mismatch", kPermissionDenied, 403,                          \
    "custosd: the request acts for an agent other than the authenticated caller.")                \
  X(kAdminRequired, 202, "admin_required", kPermissionDenied, 403,                                \
    "custosd: the endpoint needs an admin identity.")                                             \
  X(kRouteNotFound, 203, "route_not_found", kNotFound, 404, "custosd: no route has this path.")   \
  X(kMethodNotAllowed, 204, "method_not_allowed", kInvalidArgument, 405,                          \
    "custosd: the route exists but not for this method; see the Allow header.")                   \
  X(kUnsupportedMediaType, 205, "unsupported_media_type", kInvalidArgument, 415,                  \
    "custosd: the request body is not application/json.")                                         \
  X(kRequestTimeout, 206, "request_timeout", kDeadlineExceeded, 408,                              \
    "custosd: the request's headers or body did not arrive in time; the connection is closed.")   \
  X(kHeadersTooLarge, 207, "headers_too_large", kInvalidArgument, 431,                            \
    "custosd: too many request headers, or too many header bytes.")                               \
  X(kMalformedHttp, 208, "malformed_http", kInvalidArgument, 400,                                 \
    "custosd: the request is not valid HTTP/1.1.")                                                \
  X(kInsecureBind, 209, "insecure_bind", kFailedPrecondition, 400,                                \
    "custosd: a non-loopback listener needs TLS and a TCP auth method (API keys, agent keys).")   \
  X(kTlsConfigError, 210, "tls_config_error", kFailedPrecondition, 400,                           \
    "custosd: the TLS certificate or key cannot be used (unreadable, mismatched, or key not "     \
    "0600).")                                                                                     \
  X(kSignatureInvalid, 211, "signature_invalid", kUnauthenticated, 401,                           \
    "custosd: a signed request's Ed25519 signature does not verify, or its headers are "          \
    "malformed.")                                                                                 \
  X(kSignatureStale, 212, "signature_stale", kUnauthenticated, 401,                               \
    "custosd: a signed request's timestamp is outside the allowed clock skew.")                   \
  X(kNonceReplayed, 213, "nonce_replayed", kUnauthenticated, 401,                                 \
    "custosd: a signed request reuses a nonce already seen within the skew window.")              \
  X(kUnknownAgentKey, 214, "unknown_agent_key", kUnauthenticated, 401,                            \
    "custosd: a signed request names an agent with no registered public key.")                    \
  X(kMcpUnknownMethod, 230, "mcp_unknown_method", kInvalidArgument, 400,                          \
    "An MCP method the gateway does not know; refused, never forwarded (JSON-RPC -32601).")       \
  X(kMcpDescriptorChanged, 231, "mcp_descriptor_changed", kPermissionDenied, 403,                 \
    "An MCP tool's descriptor differs from the pinned one; hidden until re-approved.")            \
  X(kMcpToolUnclassified, 232, "mcp_tool_unclassified", kPermissionDenied, 403,                   \
    "An MCP tool has no annotations and no classification in the gateway config; fails closed.")  \
  X(kMcpServerUnavailable, 233, "mcp_server_unavailable", kUnavailable, 503,                      \
    "A downstream MCP server is not running, crashed, or did not answer in time.")                \
  X(kMcpProtocolError, 234, "mcp_protocol_error", kInvalidArgument, 400,                          \
    "A peer sent a message that is not valid JSON-RPC 2.0 / MCP, or exceeds a size or rate cap.") \
  X(kMcpVersionUnsupported, 235, "mcp_version_unsupported", kFailedPrecondition, 400,             \
    "No MCP protocol version both peers speak.")                                                  \
  X(kMcpUnknownTool, 236, "mcp_unknown_tool", kNotFound, 404,                                     \
    "No downstream MCP server offers this tool, resource or prompt.")                             \
  X(kMcpConfigError, 237, "mcp_config_error", kInvalidArgument, 400,                              \
    "gateway.toml is malformed or inconsistent; `at` gives file:line.")                           \
  X(kMcpCancelled, 238, "mcp_cancelled", kAborted, 409,                                           \
    "The MCP client cancelled the request; the server was told and no response is sent.")         \
  X(kMcpSessionNotFound, 239, "mcp_session_not_found", kNotFound, 404,                            \
    "The Mcp-Session-Id is unknown or its session ended; start a new one with initialize.")       \
  X(kMcpSessionRequired, 240, "mcp_session_required", kInvalidArgument, 400,                      \
    "A Streamable HTTP request other than initialize carried no Mcp-Session-Id.")                 \
  X(kMcpOriginRefused, 241, "mcp_origin_refused", kPermissionDenied, 403,                         \
    "The request's Origin is not in gateway.toml [http] allowed_origins (DNS rebinding).")        \
  X(kMcpNotAcceptable, 242, "mcp_not_acceptable", kInvalidArgument, 406,                          \
    "The Accept header lacks a content type the Streamable HTTP transport answers with.")         \
  X(kMcpTokenInvalid, 243, "mcp_token_invalid", kUnauthenticated, 401,                            \
    "The MCP HTTP front's OAuth access token is missing, malformed, badly signed, expired, or "   \
    "for another audience or issuer.")                                                            \
  X(kMcpSessionForbidden, 244, "mcp_session_forbidden", kPermissionDenied, 403,                   \
    "The MCP session belongs to another token subject.")                                          \
  X(kMcpHeaderMismatch, 250, "mcp_header_mismatch", kInvalidArgument, 400,                        \
    "MCP over HTTP: MCP-Protocol-Version, Mcp-Method or Mcp-Name is missing or disagrees "        \
    "with the body (JSON-RPC -32020).")                                                           \
  X(kMcpEnvelopeInvalid, 251, "mcp_envelope_invalid", kInvalidArgument, 400,                      \
    "An MCP 2026-07-28 request's _meta envelope (protocolVersion, clientCapabilities, "           \
    "clientInfo) is missing or malformed (JSON-RPC -32602).")                                     \
  X(kMcpSubjectUnmapped, 260, "mcp_subject_unmapped", kPermissionDenied, 403,                     \
    "The access token's subject has no entry in gateway.toml [http.auth.subjects] (and there is " \
    "no \"*\" entry), so it acts as no policy agent.")                                            \
  X(kMcpResumeUnavailable, 261, "mcp_resume_unavailable", kFailedPrecondition, 409,               \
    "MCP over HTTP: the Last-Event-ID names no event stream of this session, or the events "      \
    "after it are no longer buffered; nothing was replayed.")                                     \
  X(kMcpRequestStateInvalid, 270, "mcp_request_state_invalid", kInvalidArgument, 400,             \
    "An MCP 2026-07-28 retry's requestState was not issued by this gateway session, has "         \
    "expired, or belongs to another request (JSON-RPC -32602).")

enum class Reason : uint16_t {
#define CUSTOS_REASON_ENUM(e, n, name, cls, http, doc) e = n,
  CUSTOS_REASONS(CUSTOS_REASON_ENUM)
#undef CUSTOS_REASON_ENUM
};

struct ReasonInfo {
  Reason reason;
  std::string_view name;  // snake_case wire name
  ReasonClass cls;
  int http_status;
  std::string_view doc;
};

// The full table, in declaration order.
std::span<const ReasonInfo> AllReasons();
const ReasonInfo& InfoOf(Reason r);
std::string_view ReasonName(Reason r);
std::optional<Reason> ReasonFromName(std::string_view name);
std::string_view ReasonClassName(ReasonClass c);
// CLI exit code for a reason: 0 for ok, 10 + class number otherwise (documented in the README).
int ExitCodeOf(Reason r);

}  // namespace custos
