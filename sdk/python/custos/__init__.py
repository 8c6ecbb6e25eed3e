"""Python client for custosd, the Custos agent security kernel daemon (standard library only)."""

from .client import Candidate, Client, Decision, Handle, SyscallResult
from .errors import BY_REASON, REASONS, CustosError, error_for
from .errors import *  # noqa: F401,F403  (one exception class per reason code)

__all__ = ["Client", "Decision", "Handle", "SyscallResult", "Candidate", "CustosError",
           "error_for", "REASONS", "BY_REASON"] + [c.__name__ for c in BY_REASON.values()]
