"""Who is calling (authentication) and what they may read (authorisation by attributes).

Routes never look at credentials: they depend on `principal` (any authenticated caller),
`acting_cadre` (a caller who records as a cadre) or `reader` (a caller's read scope).
`principal` asks the app's `Authenticator`; the default checks API keys, and an OIDC/JWT
front is another `Authenticator` set on `app.state.authenticator`, with no route touched.

What a command may do is the domain's to decide (jurisdiction, roles, recusal): the API
only makes sure the actor is the authenticated cadre. What a query may show is decided
here, from the caller's attributes and the record's: its units, and who it involves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Protocol
from uuid import UUID

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.feed.log import FeedFilter
from api.feed.withholding import Recusal
from api.keys import KIND_ROLES, NOT_REMEMBERED, ApiKey, KeyStore, NotRemembered, Principal, PrincipalKind
from api.problems import FORBIDDEN, OUT_OF_SCOPE, UNAUTHENTICATED, ApiProblem
from domain.case import accuses
from domain.errors import NotActive, NotFound
from domain.ledger import Ledger
from domain.values import Role
from projections.queries import CaseRow


class Authenticator(Protocol):
    """Turns a bearer token into a principal, or None if it stands for no one."""

    def authenticate(self, token: str) -> Principal | None: ...


@dataclass(frozen=True)
class ApiKeys:
    """The default authenticator: the ledger's own API keys."""

    keys: KeyStore

    def authenticate(self, token: str) -> Principal | None:
        return self.keys.verify(token)

    def remembered(self, token: str) -> Principal | NotRemembered | None:
        """From the keys' memory alone, without blocking; `NOT_REMEMBERED` if it needs the store."""
        return self.keys.verify_remembered(token)


bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer dlk_…`.")


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dutyledger"'}


async def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The authenticated caller; 401 without a live key.

    On the event loop when the default authenticator remembers the key (no thread hop for
    most requests); on a worker thread when it must read the store, or for any other
    `Authenticator`, which may block.
    """
    token = _token(credentials)
    authenticator: Authenticator = request.app.state.authenticator
    found = authenticator.remembered(token) if isinstance(authenticator, ApiKeys) else NOT_REMEMBERED
    if isinstance(found, NotRemembered):
        found = await run_in_threadpool(authenticator.authenticate, token)
    return _admitted(request, found)


def authenticated(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """`principal`, for code already on a worker thread (it may block on the store)."""
    token = _token(credentials)
    authenticator: Authenticator = request.app.state.authenticator
    return _admitted(request, authenticator.authenticate(token))


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise ApiProblem(UNAUTHENTICATED, "send an API key as 'Authorization: Bearer <key>'", CHALLENGE)
    return credentials.credentials


def _admitted(request: Request, found: Principal | None) -> Principal:
    """The caller, past the rate limit; 401 if the token stands for no live key."""
    if found is None:
        raise ApiProblem(UNAUTHENTICATED, "the key is unknown, expired or revoked", CHALLENGE)
    request.app.state.limiter.admit(found)
    request.state.principal = found
    return found


Caller = Annotated[Principal, Depends(principal)]


async def acting_cadre(caller: Caller) -> UUID:
    """The cadre a command is recorded as: the key's own, never one named in the request."""
    if caller.cadre_id is None:
        raise ApiProblem(FORBIDDEN, "an integrator key records nothing; commands need a cadre's key")
    return caller.cadre_id


@dataclass(frozen=True)
class Acting:
    """Whom a command is recorded as, and the unit subtrees the key limits it to (none: no limit)."""

    cadre_id: UUID
    within: frozenset[UUID]


async def acting(caller: Caller) -> Acting:
    """The key's cadre, limited to the key's units if it is an inspector's key: an inspector key
    reaches no further with its inquiries than with its reads."""
    cadre_id = await acting_cadre(caller)
    within = frozenset(caller.scope_unit_ids) if caller.kind is PrincipalKind.INSPECTOR else frozenset()
    return Acting(cadre_id, within)


def administrator(request: Request, caller: Caller) -> Principal:
    """An administrator's key whose cadre is in service and still holds the administrator role."""
    if caller.kind is not PrincipalKind.ADMINISTRATOR or caller.cadre_id is None:
        raise ApiProblem(FORBIDDEN, "only an administrator's key may do this")
    refused = why_not_administering(request.app.state.ledger, caller.cadre_id)
    if refused is not None:
        raise ApiProblem(FORBIDDEN, refused)
    return caller


def why_not_administering(ledger: Ledger, cadre_id: UUID) -> str | None:
    """Why an administrator key's cadre may not administer now (None if it may): out of service,
    or no longer holding the role. Asked at every use of the key, not only when it was made."""
    try:
        actor = ledger.actor_at(cadre_id)
    except (NotFound, NotActive) as error:
        return f"this key's cadre cannot administer: {error.detail}"
    if Role.ADMINISTRATOR not in actor.cadre.roles:
        return "this key's cadre no longer holds the administrator role"
    return None


@dataclass(frozen=True)
class ReadScope:
    """What a caller may read: every unit, or the subtrees of `unit_ids`, plus what involves `cadre_id`."""

    everything: bool
    unit_ids: frozenset[UUID] = frozenset()
    cadre_id: UUID | None = None
    served: frozenset[UUID] = frozenset()
    """Every unit the reader has served in, their present one included (to tell whether a petition
    accuses them: `domain.case.accuses`)."""

    def covers(self, unit_path: tuple[UUID, ...]) -> bool:
        """Whether a unit, given by its path from the root, lies in a readable subtree."""
        return self.everything or not self.unit_ids.isdisjoint(unit_path)

    def sees_case(self, case: CaseRow) -> bool:
        # `unit_path` is "/root/…/unit/": a readable unit lies on it as one whole segment
        if self.everything or any(f"/{unit}/" in case.unit_path for unit in self.unit_ids):
            return True
        involved = {case.first_receiver_id, case.responsible_cadre_id, case.handler_id, case.owning_leader_id}
        return self.cadre_id is not None and self.cadre_id in involved

    def check_case(self, case: CaseRow) -> None:
        if not self.sees_case(case):
            raise ApiProblem(
                OUT_OF_SCOPE, "the case is outside what this key may read", case_id=str(case.case_id)
            )

    def check_unit(self, unit_path: tuple[UUID, ...]) -> None:
        if not self.covers(unit_path):
            raise ApiProblem(
                OUT_OF_SCOPE, "the unit is outside what this key may read", unit_id=str(unit_path[-1])
            )

    def accused_in(self, case: CaseRow) -> bool:
        """Whether the reader is accused in the case, by the rule of recusal (their person, or a unit
        they serve or served in)."""
        if self.cadre_id is None:
            return False
        return accuses(case.accused_cadre_ids, case.accused_unit_ids, self.cadre_id, self.served)


async def read_scope(request: Request, caller: Caller) -> ReadScope:
    """The read scope: administrators read everything, inspectors their units, cadres their jurisdiction."""
    return await request.app.state.reader.run(_read_scope, request, caller)  # type: ignore[no-any-return]


def _read_scope(request: Request, caller: Caller) -> ReadScope:
    """`read_scope`, where the reads run (it may read the ledger for the cadre's posting)."""
    if caller.kind is PrincipalKind.INTEGRATOR:
        raise ApiProblem(FORBIDDEN, "an integrator key reads the event feed, not the casework views")
    assert caller.cadre_id is not None
    ledger: Ledger = request.app.state.ledger
    try:
        actor = ledger.actor_at(caller.cadre_id)
    except (NotFound, NotActive) as error:
        raise ApiProblem(FORBIDDEN, f"this key's cadre cannot read: {error.detail}") from None
    served = actor.units_served
    role = KIND_ROLES.get(caller.kind)
    if role is not None and role not in actor.cadre.roles:
        raise ApiProblem(FORBIDDEN, f"this key's cadre no longer holds the {role} role")
    if caller.kind is PrincipalKind.ADMINISTRATOR:
        return ReadScope(everything=True, cadre_id=caller.cadre_id, served=served)
    units = caller.scope_unit_ids if caller.kind is PrincipalKind.INSPECTOR else frozenset({actor.scope.id})
    return ReadScope(everything=False, unit_ids=units, cadre_id=caller.cadre_id, served=served)


Reader = Annotated[ReadScope, Depends(read_scope)]


def feed_filter(request: Request, caller: Caller) -> FeedFilter:
    """What the caller's key lets it read of the feed: an integrator its filters, an administrator all."""
    if caller.kind is PrincipalKind.ADMINISTRATOR:
        administrator(request, caller)
        assert caller.cadre_id is not None
        return administrators_filter(request.app.state.ledger, caller.cadre_id)
    if caller.kind is not PrincipalKind.INTEGRATOR:
        raise ApiProblem(FORBIDDEN, "the event feed is read with an integrator's or administrator's key")
    return key_filter(caller)


def administrators_filter(ledger: Ledger, cadre_id: UUID) -> FeedFilter:
    """The whole feed, less what would show this administrator an accusation against them
    (`api.feed.withholding`); their cadre must be serving (`why_not_administering`)."""
    return FeedFilter(recused=Recusal(cadre_id, ledger.actor_at(cadre_id).units_served))


def key_filter(caller: Principal) -> FeedFilter:
    """The feed filter an integrator key carries."""
    return FeedFilter.of(caller.event_types, caller.scope_unit_ids)


def working_key(keys: KeyStore, ledger: Ledger, key_id: str) -> ApiKey | None:
    """The key if it works now, else None: neither revoked nor expired, and an administrator's only
    while its cadre serves and holds the role, as at the API (`administrator`).

    Who reads the feed for a long time (a webhook endpoint, a live stream) is asked this again
    and again: what a key let them read when they began is not what it lets them read now.
    """
    key = keys.get(key_id)
    if key is None or not key.usable_at(datetime.now(UTC)):
        return None
    if key.kind is PrincipalKind.ADMINISTRATOR and (
        key.cadre_id is None or why_not_administering(ledger, key.cadre_id) is not None
    ):
        return None
    return key


def feed_filter_now(keys: KeyStore, ledger: Ledger, key_id: str) -> FeedFilter | None:
    """What the key lets its holder read of the feed now (`working_key`); None once it does not work."""
    key = working_key(keys, ledger, key_id)
    if key is None:
        return None
    if key.kind is PrincipalKind.ADMINISTRATOR:
        assert key.cadre_id is not None
        return administrators_filter(ledger, key.cadre_id)
    return key_filter(key.principal())
