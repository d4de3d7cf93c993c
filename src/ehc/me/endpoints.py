"""The resident's own API: thin. Authorise (me/auth.py), pick the card (me/service.py), call the card
rules (cards/service.py), shape the answer (me/schemas.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Response

from ..accounts import service as accounts
from ..cards import service as cards
from ..cards.service import Card, FamilyMemberIn, NewbornIn
from ..kit import idempotency
from ..kit.context import Ctx
from . import service
from .auth import Resident, SignInToken
from .schemas import MyCardOut, MyFamilyMemberOut, PasswordIn, ReasonIn, my_card_out

router = APIRouter(prefix="/api/v1/me", tags=["me"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def _out(ctx: Ctx, card: Card, *, own: bool, created: bool | None = None) -> MyCardOut:
    person, details, identifiers = cards.holder(ctx, card, purpose="card.view" if own else "card.family")
    return my_card_out(card, person, details, identifiers, own=own, created=created)


def _once(ctx: Ctx, key: str | None, route: str, payload: dict, response: Response,
          do: Callable[[], cards.Issued]) -> MyCardOut:
    """Run ``do`` once per Idempotency-Key (scoped to this resident): a retry gets the same card back."""
    def issue() -> tuple[Card, bool]:
        issued = do()
        return issued.card, issued.created

    card, created = idempotency.run_once(ctx, key, route, payload, response, issue, ref=lambda card: card.ehc_id,
                                         load=lambda ehc_id: cards.get_card(ctx, ehc_id))
    return _out(ctx, card, own=False, created=created)


@router.get("/card", response_model=MyCardOut, summary="My card, with my details in full")
def my_card(ctx: Resident) -> MyCardOut:
    return _out(ctx, service.my_card(ctx), own=True)


@router.post("/card/report-lost", response_model=MyCardOut,
             summary="Report my card lost (freezes it; my other sign-ins end, this one stays)")
def report_my_card_lost(ctx: Resident, token: SignInToken, body: ReasonIn | None = None) -> MyCardOut:
    card = service.report_my_card_lost(ctx, body.reason if body else None, keep_session=token)
    return _out(ctx, card, own=True)


@router.get("/family", response_model=list[MyFamilyMemberOut], summary="Family members I guard, with their cards")
def my_family(ctx: Resident) -> list[MyFamilyMemberOut]:
    return [
        MyFamilyMemberOut(relation=binding.relation, card=_out(ctx, card, own=False) if card else None)
        for binding, card in service.family(ctx)
    ]


@router.post("/family", response_model=MyCardOut, status_code=201,
             responses=idempotency.responses(MyCardOut),
             summary="Bind a family member (registering their card if they have none); I am the guardian")
def bind_family_member(body: FamilyMemberIn, ctx: Resident, response: Response,
                       idempotency_key: IdempotencyKey = None) -> MyCardOut:
    def do() -> cards.Issued:
        return service.bind_family_member(ctx, cards.registration_of(body), body.relation)

    return _once(ctx, idempotency_key, "family", body.model_dump(mode="json"), response, do)


@router.get("/family/{ehc_id}", response_model=MyFamilyMemberOut, summary="One family member's card")
def family_member(ehc_id: str, ctx: Resident) -> MyFamilyMemberOut:
    card, binding = service.guarded_card(ctx, ehc_id)
    return MyFamilyMemberOut(relation=binding.relation, card=_out(ctx, card, own=False))


@router.post("/family/{ehc_id}/report-lost", response_model=MyCardOut,
             summary="Report a family member's card lost")
def report_member_card_lost(ehc_id: str, ctx: Resident, token: SignInToken, body: ReasonIn | None = None) -> MyCardOut:
    card = service.report_member_card_lost(ctx, ehc_id, body.reason if body else None, keep_session=token)
    return _out(ctx, card, own=False)


@router.post("/newborns", response_model=MyCardOut, status_code=201,
             responses=idempotency.responses(MyCardOut),
             summary="Register my newborn (bound to me as my child)")
def register_newborn(body: NewbornIn, ctx: Resident, response: Response,
                     idempotency_key: IdempotencyKey = None) -> MyCardOut:
    return _once(ctx, idempotency_key, "newborn", body.model_dump(mode="json"), response,
                 lambda: service.register_newborn(ctx, cards.Newborn(**body.model_dump())))


@router.post("/password", status_code=204, response_class=Response,
             summary="Set or change my password (other sign-ins of mine end)")
def set_password(body: PasswordIn, ctx: Resident, token: SignInToken) -> Response:
    accounts.set_password(ctx, ctx.actor.id, body.new_password, current_password=body.current_password,
                           code=body.code, keep_token=token)
    return Response(status_code=204)
