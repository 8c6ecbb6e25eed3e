"""Python client for custosd, the Custos agent security kernel daemon (standard library only)."""

from .client import (Candidate, Client, Decision, DecisionEvent, ErrorEvent, Handle, OutputEvent,
                     ProgressEvent, ResultEvent, SyscallResult)
from .errors import BY_REASON, REASONS, CustosError, error_for
from .errors import *  # noqa: F401,F403  (one exception class per reason code)

__all__ = ["Client", "Decision", "Handle", "SyscallResult", "Candidate", "CustosError",
           "DecisionEvent", "ProgressEvent", "OutputEvent", "ResultEvent", "ErrorEvent",
           "error_for", "REASONS", "BY_REASON"] + [c.__name__ for c in BY_REASON.values()]
