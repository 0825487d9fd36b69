"""The errors bluegreen raises: each says what went wrong and what to do, and maps to an exit code.

Exit codes (documented in `bluegreen --help`):
  0 done, 1 refused or rolled back, 2 bad usage or configuration, 3 cluster or API error,
  130 cancelled by SIGINT, 143 cancelled by SIGTERM (128 + the signal, as a shell reports them).
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_CLUSTER = 3
EXIT_INTERRUPTED = 130  # SIGINT
EXIT_TERMINATED = 143  # SIGTERM


class BlueGreenError(Exception):
    """Base of every error bluegreen reports to a person; never raised itself."""

    exit_code: ClassVar[int] = EXIT_CLUSTER
    title: ClassVar[str] = "bluegreen failed"

    def __init__(self, message: str, *, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.message} {self.remedy}".strip() if self.remedy else self.message


# Exit 1: the request was understood and refused, or the release rolled back.
class RefusedError(BlueGreenError):
    exit_code = EXIT_REFUSED
    title = "Refused"


class NotReadyError(RefusedError):
    title = "Target colour not ready"


class LockHeldError(RefusedError):
    title = "Another run holds the lock"


class RolloutError(RefusedError):
    title = "Rollout failed"


# Exit 2: fix the command line, the configuration or the objects it names.
class UsageError(BlueGreenError):
    exit_code = EXIT_USAGE
    title = "Bad usage"


class ConfigError(UsageError):
    title = "Invalid configuration"


class NotFoundError(UsageError):
    title = "Not found"


class NotAdoptedError(UsageError):
    title = "App not set up for blue-green"


# Exit 3: the cluster or its API failed us.
class ClusterError(BlueGreenError):
    exit_code = EXIT_CLUSTER
    title = "Kubernetes API error"


class ForbiddenError(ClusterError):
    title = "Forbidden by RBAC"


class UnreachableError(ClusterError):
    title = "Kubernetes API unreachable"


class ConflictError(ClusterError):
    title = "Concurrent change"


class WaitTimeoutError(ClusterError):
    title = "Timed out"


class LockLostError(ClusterError):
    title = "Lost the lock"


# Exit 143 or 130: stopped by a signal at a safe point; the message says what state was left.
class CancelledError(BlueGreenError):
    exit_code = EXIT_TERMINATED
    title = "Cancelled"


class InterruptedByUserError(CancelledError):
    exit_code = EXIT_INTERRUPTED
    title = "Interrupted"
