"""Every refusal the ledger can give, each with a stable code.

A refusal always means nothing was written. The hierarchy, with the HTTP status
the API maps each branch to (the domain itself knows nothing of HTTP)::

    LedgerError
    ├── NotFound                   the named case, unit, cadre… does not exist   404
    ├── NotAllowed                 this actor may not do this                    403
    │   ├── OutsideJurisdiction    the case is neither in the actor's scope nor assigned to them
    │   ├── RoleRequired           the command needs a role the actor lacks
    │   └── NotActive              the actor was not in service at occurred_at
    ├── Conflict                   the ledger's current state forbids it         409
    │   ├── InvalidTransition      the command does not apply in the current status
    │   ├── AlreadyExists          the aggregate or ledger already exists
    │   ├── MatterFinal            the matter was finally decided (终结)
    │   ├── IdempotencyConflict    same command id, different command
    │   ├── VersionConflict        the caller's expected version is stale        412
    │   └── ConcurrencyConflict    concurrent writers kept colliding
    └── RuleViolation              the command breaks a rule of the domain       422
        ├── OutsideWindow          too early or too late for a statutory window
        ├── ConflictOfInterest     an accused cadre or unit cannot take this role
        ├── ExtensionRefused       a second extension, or one beyond the maximum
        ├── InvalidTime            occurred_at in the future or before its premise
        ├── PersonalDataInText     a phone, ID-card number or e-mail in a narrative
        └── InvalidArgument        a value is malformed or inconsistent
"""

from __future__ import annotations

from typing import Any, ClassVar


class LedgerError(Exception):
    """Base of every domain refusal; `code` is stable and documented."""

    code: ClassVar[str] = "ledger-error"
    title: ClassVar[str] = "The ledger refused the command"

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class NotFound(LedgerError):
    code = "not-found"
    title = "No such record"


class NotAllowed(LedgerError):
    code = "not-allowed"
    title = "The actor may not do this"


class OutsideJurisdiction(NotAllowed):
    code = "outside-jurisdiction"
    title = "The case is outside the actor's jurisdiction"


class RoleRequired(NotAllowed):
    code = "role-required"
    title = "The command needs a role the actor does not hold"


class NotActive(NotAllowed):
    code = "actor-not-active"
    title = "The actor was not in service at that time"


class Conflict(LedgerError):
    code = "conflict"
    title = "The ledger's state forbids this now"


class InvalidTransition(Conflict):
    code = "invalid-transition"
    title = "The command does not apply in the current status"


class AlreadyExists(Conflict):
    code = "already-exists"
    title = "It already exists"


class MatterFinal(Conflict):
    code = "matter-final"
    title = "The matter was finally decided and cannot be taken up again"


class IdempotencyConflict(Conflict):
    code = "idempotency-conflict"
    title = "This command id was already used for a different command"


class VersionConflict(Conflict):
    code = "version-conflict"
    title = "The record changed since the version the caller expected"


class ConcurrencyConflict(Conflict):
    code = "concurrency-conflict"
    title = "Concurrent changes kept colliding; retry the command"


class RuleViolation(LedgerError):
    code = "rule-violation"
    title = "The command breaks a rule of petition work"


class OutsideWindow(RuleViolation):
    code = "outside-window"
    title = "Outside the statutory window for this step"


class ConflictOfInterest(RuleViolation):
    code = "conflict-of-interest"
    title = "An accused cadre or unit cannot take this role (recusal)"


class ExtensionRefused(RuleViolation):
    code = "extension-refused"
    title = "The deadline extension is not allowed"


class InvalidTime(RuleViolation):
    code = "invalid-time"
    title = "The business time is in the future or before what it depends on"


class PersonalDataInText(RuleViolation):
    code = "personal-data-in-text"
    title = "Free text must not carry personal data"


class InvalidArgument(RuleViolation):
    code = "invalid-argument"
    title = "A value is malformed or inconsistent"
