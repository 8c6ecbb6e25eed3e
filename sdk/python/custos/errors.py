"""Reason codes as exception classes.

Every error custosd returns is ``{"error": {"reason", "message", "at"}}`` with a stable reason code
(docs/reason-codes.md). The client raises the class named for that reason, all subclasses of
:class:`CustosError`; a denied syscall raises the same classes when the caller asks it to
(``check=True``). Unknown future reasons raise :class:`CustosError` itself.
"""

# The reason codes of include/custos/core/reason.h, in table order. tests/test_client.py checks
# this list against `custos reasons`, so a new code cannot be forgotten here.
REASONS = (
    "ok internal_error malformed_json schema_violation payload_too_large invalid_utf8 "
    "nesting_too_deep unknown_syscall unknown_field unsupported_version invalid_argument "
    "unknown_agent capability_missing token_invalid token_expired token_revoked run_mismatch "
    "token_missing token_uses_exhausted token_rate_limited no_matching_rule denied_by_rule "
    "path_not_allowed host_not_allowed tool_not_allowed model_not_allowed secret_not_allowed "
    "approval_required approval_denied approval_timeout token_check_failed flow_violation "
    "secret_in_egress budget_exhausted unknown_handle handle_expired foreign_handle not_found "
    "version_conflict already_exists path_escape address_not_allowed redirect_denied mailbox_empty "
    "effect_failed effect_timeout assertion_failed policy_parse_error policy_unknown_key "
    "policy_wrong_type policy_bad_pattern policy_duplicate_rule policy_invalid log_corrupt log_gap "
    "store_error key_error unavailable io_error no_checkpoint payload_unreadable "
    "rotation_invalid checkpoint_wrong_signer "
    "replay_fact_unknown replay_policy_mismatch replay_mismatch unauthenticated identity_mismatch "
    "admin_required route_not_found method_not_allowed unsupported_media_type request_timeout "
    "headers_too_large malformed_http insecure_bind tls_config_error signature_invalid "
    "signature_stale nonce_replayed unknown_agent_key mcp_unknown_method mcp_descriptor_changed "
    "mcp_tool_unclassified mcp_server_unavailable mcp_protocol_error mcp_version_unsupported "
    "mcp_unknown_tool mcp_config_error mcp_cancelled mcp_session_not_found mcp_session_required "
    "mcp_origin_refused mcp_not_acceptable mcp_token_invalid mcp_session_forbidden "
    "mcp_header_mismatch mcp_envelope_invalid mcp_subject_unmapped mcp_resume_unavailable "
    "mcp_request_state_invalid"
).split()


class CustosError(Exception):
    """An error (or, with check=True, a denial) with a stable reason code."""

    reason = "internal_error"

    def __init__(self, message="", at="", status=0, reason=None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.message = message
        self.at = at
        self.status = status

    def __str__(self):
        where = f" (at {self.at})" if self.at else ""
        return f"{self.reason}: {self.message}{where}"


def _class_name(reason):
    return "".join(part.capitalize() for part in reason.split("_")) + "Error"


BY_REASON = {}
for _reason in REASONS:
    if _reason == "ok":
        continue
    _cls = type(_class_name(_reason), (CustosError,), {"reason": _reason})
    globals()[_cls.__name__] = _cls
    BY_REASON[_reason] = _cls


def error_for(reason, message="", at="", status=0):
    """The exception instance for a wire reason code."""
    cls = BY_REASON.get(reason)
    if cls is None:
        return CustosError(message, at, status, reason=reason)
    return cls(message, at, status)
