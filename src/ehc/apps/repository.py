"""The apps domain's queries: institution apps and their registered keys."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from .models import AppKey, InstitutionApp, KeyStatus, KeysGeneration

# The app and, if it has one by that id, the key: one indexed query, built once.
_APP_AND_KEY = (
    select(InstitutionApp.institution_id, AppKey.status, AppKey.public_key_pem)
    .select_from(InstitutionApp)
    .outerjoin(AppKey, and_(AppKey.app_id == InstitutionApp.id, AppKey.key_id == bindparam("key_id")))
    .where(InstitutionApp.id == bindparam("app_id"))
)


def apps(session: Session, institution_id: str | None = None) -> list[InstitutionApp]:
    """Apps in the order they were registered; of one institution, or (None) of all."""
    query = select(InstitutionApp).order_by(InstitutionApp.created_at, InstitutionApp.id)
    if institution_id is not None:
        query = query.where(InstitutionApp.institution_id == institution_id)
    return list(session.scalars(query))


def app(session: Session, app_id: str) -> InstitutionApp | None:
    return session.get(InstitutionApp, app_id)


def keys(session: Session, app_id: str) -> list[AppKey]:
    return list(session.scalars(
        select(AppKey).where(AppKey.app_id == app_id).order_by(AppKey.created_at, AppKey.key_id)))


def key(session: Session, app_id: str, key_id: str) -> AppKey | None:
    return session.get(AppKey, (app_id, key_id))


def fingerprint_registered(session: Session, fingerprint: str) -> bool:
    return session.scalar(select(AppKey.key_id).where(AppKey.fingerprint == fingerprint)) is not None


def active_keys(session: Session, app_id: str) -> int:
    return session.scalar(select(func.count()).select_from(AppKey).where(
        AppKey.app_id == app_id, AppKey.status == KeyStatus.ACTIVE.value)) or 0


def app_and_key(connection: Connection | Session, app_id: str, key_id: str) -> Row | None:
    """(institution id, key status, key PEM) of the app, the key's fields None when it has no such
    key; None when there is no such app."""
    return connection.execute(_APP_AND_KEY, {"app_id": app_id, "key_id": key_id}).first()


# The current generation of apps' keys, as a scalar subquery a statement can return alongside its own
# result (the database nonce claim returns it, so that reading it costs no statement of its own).
KEYS_GENERATION = select(KeysGeneration.token).where(KeysGeneration.id == 1).scalar_subquery()


def replace_keys_generation(session: Session, token: str) -> None:
    """Replace the generation's token, in the caller's transaction (the one that changes the keys)."""
    if session.execute(update(KeysGeneration).where(KeysGeneration.id == 1).values(token=token)).rowcount == 0:
        session.execute(insert(KeysGeneration).values(id=1, token=token))
