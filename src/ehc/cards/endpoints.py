"""Card API: thin. Parse, authorise (cards/auth.py), call cards/service.py, shape the answer."""


from typing import Annotated

from fastapi import APIRouter, Header, Response

from ..kit import idempotency
from ..kit.context import Ctx
from ..kit.deps import one_hop
from ..kit.errors import Invalid
from . import service
from .auth import Applicant, CardClerk, CardReviewer, CardStaff
from .schemas import (
    ActionIn,
    CardEventOut,
    CardOut,
    ChangesIn,
    FamilyMemberIn,
    FamilyMemberOut,
    LookupIn,
    MergeIn,
    NewbornIn,
    RegistrationIn,
    ReviewIn,
    TemporaryIn,
    card_out,
)

router = APIRouter(prefix="/api/v1/cards", tags=["cards"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def _out(ctx: Ctx, card, created: bool | None = None, *, purpose: str) -> CardOut:  # noqa: ANN001
    # Opening the holder's details is recorded in the audit trail under ``purpose``.
    person, details, identifiers = service.holder(ctx, card, purpose=purpose)
    return card_out(card, person, details, identifiers, created=created)


def _idempotent(ctx: Ctx, key: str | None, route: str, payload: dict, response: Response, do,  # noqa: ANN001
                purpose: str) -> CardOut:
    """Run ``do`` once per Idempotency-Key: a retry gets the same card and status code back."""
    card, created = idempotency.run_once(ctx, key, route, payload, response, do, ref=lambda card: card.ehc_id,
                                         load=lambda ehc_id: service.get_card(ctx, ehc_id))
    return _out(ctx, card, created, purpose=purpose)


@router.post("", response_model=CardOut, status_code=201,
             responses=idempotency.responses(CardOut), summary="Apply for a card (or get the existing one)")
@one_hop  # a hot path: the registration and its commit in one trip to the thread pool
def register(body: RegistrationIn, ctx: Applicant, response: Response, idempotency_key: IdempotencyKey = None) -> CardOut:
    issued: list[service.Issued] = []

    def do():  # noqa: ANN202
        issued.append(service.register(ctx, service.registration_of(body)))
        return issued[0].card, issued[0].created

    # The body as JSON is the key's fingerprint: without a key nothing reads it, so it is not made.
    payload = body.model_dump(mode="json") if idempotency_key is not None else None
    card, created = idempotency.run_once(ctx, idempotency_key, "register", payload, response, do,
                                         ref=lambda card: card.ehc_id, load=lambda ehc_id: service.get_card(ctx, ehc_id))
    if not issued:  # a replay: the card as it stands, read and opened
        return _out(ctx, card, created, purpose="card.register")
    # A new person's details are the ones just given: the answer shows them without reading them back.
    person, details, identifiers = service.issued_holder(ctx, issued[0], purpose="card.register")
    return card_out(card, person, details, identifiers, created=created)


@router.post("/lookup", response_model=CardOut, summary="Find the card of a document holder")
@one_hop  # the window's hot path: the look-up and its commit in one trip to the thread pool
def lookup(body: LookupIn, ctx: CardStaff) -> CardOut:
    # POST, not GET: document numbers must not end up in URLs, proxies' logs or browser history.
    card, person, details, identifiers = service.lookup(ctx, body.document.type, body.document.number,
                                                        purpose="card.lookup")  # audited
    return card_out(card, person, details, identifiers)


@router.get("/{ehc_id}", response_model=CardOut)
def get_card(ehc_id: str, ctx: CardStaff) -> CardOut:
    return _out(ctx, service.get_card(ctx, ehc_id), purpose="card.view")


@router.get("/{ehc_id}/events", response_model=list[CardEventOut])
def card_events(ehc_id: str, ctx: CardStaff) -> list[CardEventOut]:
    card = service.get_card(ctx, ehc_id)
    return [CardEventOut.model_validate(e, from_attributes=True) for e in service.history(ctx, card)]


@router.patch("/{ehc_id}", response_model=CardOut, summary="Modify the holder's details (re-verified)")
def modify(ehc_id: str, body: ChangesIn, ctx: CardClerk) -> CardOut:
    changes = service.Changes(**body.model_dump(exclude={"reason"}))
    return _out(ctx, service.modify(ctx, ehc_id, changes, body.reason), purpose="card.modify")


def _action_route(action: str, dependency) -> None:  # noqa: ANN001
    path = action.replace("_", "-")

    # Evaluated at definition time (no postponed annotations in this module), so FastAPI sees the
    # real dependency type.
    def act(ehc_id: str, ctx: dependency, body: ActionIn | None = None) -> CardOut:  # type: ignore[valid-type]
        return _out(ctx, service.transition(ctx, ehc_id, action, body.reason if body else None),
                    purpose="card.lifecycle")

    act.__name__ = f"card_{action}"
    router.add_api_route(f"/{{ehc_id}}/{path}", act, methods=["POST"], response_model=CardOut,
                         summary=f"{action.replace('_', ' ').capitalize()} a card")


for _action in ("report_lost", "recover", "reissue", "cancel"):
    _action_route(_action, CardClerk)


def _review_route(decision: str) -> None:
    def decide(ehc_id: str, ctx: CardReviewer, body: ReviewIn | None = None) -> CardOut:
        body = body or ReviewIn()
        document = body.document
        card = service.review(ctx, ehc_id, decision, document_type=document.type if document else None,
                              document_number=document.number if document else None, reason=body.reason)
        return _out(ctx, card, purpose="card.lifecycle")

    decide.__name__ = f"card_{decision}"
    summary = ("Approve an application pending review, with the document the holder shows" if decision == "approve"
               else "Reject an application pending review, saying why")
    router.add_api_route(f"/{{ehc_id}}/{decision}", decide, methods=["POST"], response_model=CardOut, summary=summary)


for _decision in ("approve", "reject"):
    _review_route(_decision)


@router.get("/{ehc_id}/family", response_model=list[FamilyMemberOut])
def family(ehc_id: str, ctx: CardStaff) -> list[FamilyMemberOut]:
    return [
        FamilyMemberOut(relation=b.relation, card=_out(ctx, card, purpose="card.family") if card else None)
        for b, card in service.family_of(ctx, ehc_id)
    ]


@router.post("/{ehc_id}/family", response_model=CardOut, status_code=201,
             responses=idempotency.responses(CardOut), summary="Bind a family member")
def bind_family(ehc_id: str, body: FamilyMemberIn, ctx: CardClerk, response: Response,
                idempotency_key: IdempotencyKey = None) -> CardOut:
    def do():  # noqa: ANN202
        member = service.registration_of(body)
        issued = service.bind_family_member(ctx, ehc_id, member, body.relation)
        return issued.card, issued.created

    return _idempotent(ctx, idempotency_key, f"family:{ehc_id}", body.model_dump(mode="json"), response, do,
                       "card.family")


@router.post("/{ehc_id}/newborns", response_model=CardOut, status_code=201,
             responses=idempotency.responses(CardOut), summary="Register a newborn")
def newborn(ehc_id: str, body: NewbornIn, ctx: CardStaff, response: Response,
            idempotency_key: IdempotencyKey = None) -> CardOut:
    def do():  # noqa: ANN202
        issued = service.register_newborn(ctx, ehc_id, service.Newborn(**body.model_dump()))
        return issued.card, issued.created

    return _idempotent(ctx, idempotency_key, f"newborn:{ehc_id}", body.model_dump(mode="json"), response, do,
                       "card.newborn")


@router.post("/temporary", response_model=CardOut, status_code=201, summary="Temporary card for an unidentified patient")
def temporary(body: TemporaryIn, ctx: CardStaff, response: Response, idempotency_key: IdempotencyKey = None) -> CardOut:
    def do():  # noqa: ANN202
        issued = service.register_temporary(ctx, sex=body.sex, approximate_birth_year=body.approximate_birth_year,
                                             note=body.note)
        return issued.card, True

    return _idempotent(ctx, idempotency_key, "temporary", body.model_dump(mode="json"), response, do,
                       "card.temporary")


@router.post("/{ehc_id}/merge", response_model=CardOut, summary="Merge a temporary card into the identified person's")
def merge(ehc_id: str, body: MergeIn, ctx: CardClerk) -> CardOut:
    if body.into.upper() == ehc_id.upper():
        raise Invalid("A card cannot be merged into itself.", code="merge_same_person")
    return _out(ctx, service.merge_temporary(ctx, ehc_id, body.into, body.reason or ""), purpose="card.merge")
