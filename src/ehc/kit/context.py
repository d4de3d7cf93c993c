"""Who is acting, and the unit of work they act in. Every service function takes a ``Ctx``."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from ..config import Settings
from ..crypto import BlindIndex, KeyStore, Opener, PinnedSealer, Sealer
from .codes import Channel


@dataclass(frozen=True)
class Actor:
    """The party behind a request, as the audit trail and the card events record it.

    ``kind`` is one of: anonymous (a public page), resident, staff, machine (a hospital system),
    system (CLI, batch jobs). ``institution_id`` and ``operator`` are set where there is one;
    ``department`` (a department code of that institution) where the reader works in one: a staff
    account placed in a department, or a hospital system's call naming it (``X-EHC-Department``).
    Department-level consent grants are checked against it.
    """

    kind: str
    channel: Channel
    id: str | None = None
    institution_id: str | None = None
    operator: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    department: str | None = None

    @classmethod
    def system(cls, operator: str = "cli", channel: Channel = Channel.BATCH_IMPORT) -> "Actor":
        return cls(kind="system", channel=channel, id=operator, operator=operator)

    @classmethod
    def anonymous(cls, channel: Channel = Channel.WEBSITE) -> "Actor":
        return cls(kind="anonymous", channel=channel)


class Vault:
    """The crypto a service needs for personal data: seal, open, blind-index. Built once per process."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self._sealer = Sealer(keys)
        self.blind = BlindIndex(keys)

    def seal(self, value: str, context: str) -> str:
        return self._sealer.seal(value, context)

    def seal_optional(self, value: str | None, context: str) -> str | None:
        return self._sealer.seal_optional(value, context)

    def pinned(self) -> PinnedSealer:
        """A sealer fixed to the active key, for one batch of a bulk write (``Sealer.pinned``)."""
        return self._sealer.pinned()

    def open(self, sealed: str, context: str) -> str:
        return self._sealer.open(sealed, context)

    def open_optional(self, sealed: str | None, context: str) -> str | None:
        return self._sealer.open_optional(sealed, context)

    def opener(self) -> Opener:
        """An opener for one bounded run of values (``Sealer.opener``): the key store consulted once a key."""
        return self._sealer.opener()


# The id of the HTTP request being served (set by ``kit.http.RequestIdMiddleware``), for the audit
# trail; None in the CLI and batch jobs.
current_request_id: ContextVar[str | None] = ContextVar("ehc_request_id", default=None)
# The address the HTTP request came from (set by the same middleware), for limits that count per
# source, such as a burst of bookings from one address; None outside a request.
current_client_address: ContextVar[str | None] = ContextVar("ehc_client_address", default=None)


@dataclass
class Ctx:
    session: Session
    vault: Vault
    actor: Actor
    settings: Settings
    request_id: str | None = field(default_factory=current_request_id.get)
    address: str | None = field(default_factory=current_client_address.get)
