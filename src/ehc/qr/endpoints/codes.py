"""QR API: thin. Residents draw dynamic codes, window staff print static ones, terminals verify."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from ...payments import service as payments
from ...cards import service as cards
from ...cards.service import Card, CardStatus
from ...identity.service import mask_number
from ...kit.context import Ctx
from ...kit.deps import one_hop
from ...me import service as me
from .. import codec, label, service
from ..auth import QRHolder, QRPrinter, QRVerifier
from ..schemas import CardUseOut, DynamicCodeOut, VerifiedHolderOut, VerifyIn, VerifyOut

router = APIRouter(tags=["qr"])

_NO_STORE = {"Cache-Control": "no-store"}


def _resident_card(ctx: Ctx, member: str | None) -> Card:
    return me.guarded_card(ctx, member)[0] if member else me.my_card(ctx)


_PAYMENT = Query(None, max_length=32, description="a payment channel (e.g. sandbox): a two-in-one EHCM1: code")


def _draw(ctx: Ctx, member: str | None, payment: str | None) -> service.Issued:
    channel = payments.channel(ctx, payment) if payment else None  # an unknown name: 422 before anything else
    return service.issue_dynamic(ctx, _resident_card(ctx, member), payment=channel)


@router.post("/api/v1/me/qr/dynamic", response_model=DynamicCodeOut,
             summary="A fresh dynamic QR code for my card, or (?member=) a family member's I guard")
def my_dynamic_code(ctx: QRHolder, response: Response, member: str | None = None,
                    payment: str | None = _PAYMENT) -> DynamicCodeOut:
    issued = _draw(ctx, member, payment)
    response.headers.update(_NO_STORE)
    return DynamicCodeOut(text=issued.text, expires_at=issued.expires_at,
                          refresh_after=ctx.settings.qr_refresh_seconds, payment_channel=payment or None)


@router.get("/api/v1/me/qr/dynamic.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}},
            summary="A fresh dynamic QR code as a PNG image")
def my_dynamic_png(ctx: QRHolder, member: str | None = None, payment: str | None = _PAYMENT) -> Response:
    issued = _draw(ctx, member, payment)
    image = codec.render_png(issued.text)
    return Response(image.data, media_type=image.media_type,
                    headers={**_NO_STORE, "X-EHC-Expires-At": issued.expires_at.isoformat(),
                             "X-EHC-Refresh-After": str(ctx.settings.qr_refresh_seconds),
                             "X-EHC-QR-Version": str(image.version)})


@router.get("/api/v1/me/card-uses", response_model=list[CardUseOut],
            summary="Where and for what my card (or, with ?member=, a family member's) was used, newest first")
def my_card_uses(ctx: QRHolder, member: str | None = None, limit: int = Query(50, ge=1, le=200)) -> list[CardUseOut]:
    return [
        CardUseOut(at=u.at, scene=u.scene, scene_label=service.SCENES.get(u.scene, u.scene), channel=u.channel,
                   institution_id=u.institution_id, terminal_id=u.terminal_id, department=u.department,
                   code_type=u.code_type)
        for u in service.uses_of(ctx, _resident_card(ctx, member), limit=limit)
    ]


def _static(ctx: Ctx, ehc_id: str, render) -> Response:
    issued = service.issue_static(ctx, cards.get_card(ctx, ehc_id))
    image = render(issued.text)
    return Response(image.data, media_type=image.media_type, headers=_NO_STORE)


@router.get("/api/v1/cards/{ehc_id}/qr/static.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}}, summary="Print the card's static QR code (PNG)")
def static_png(ehc_id: str, ctx: QRPrinter) -> Response:
    return _static(ctx, ehc_id, codec.render_png)


@router.get("/api/v1/cards/{ehc_id}/qr/static.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}}, summary="Print the card's static QR code (SVG)")
def static_svg(ehc_id: str, ctx: QRPrinter) -> Response:
    return _static(ctx, ehc_id, codec.render_svg)


@router.get("/api/v1/cards/{ehc_id}/qr/static.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}},
            summary="Print the card's static QR code on an A7 label (PDF) with the holder's masked name")
def static_pdf(ehc_id: str, ctx: QRPrinter) -> Response:
    made = label.label_for(ctx, cards.get_card(ctx, ehc_id))
    headers = {**_NO_STORE, "Content-Disposition": 'inline; filename="ehc-qr-label.pdf"'}
    if made.font_note:
        headers["X-EHC-Label-Note"] = made.font_note
    return Response(made.pdf, media_type="application/pdf", headers=headers)


@router.post("/api/v1/qr/verify", response_model=VerifyOut,
             summary="Verify a scanned code and record the card use (care step, channel, terminal)")
@one_hop  # the hot path: the verification and its commit in one trip to the thread pool
def verify(body: VerifyIn, ctx: QRVerifier) -> VerifyOut:
    use = service.Use(scene=body.scene, channel=body.channel, terminal_id=body.terminal_id,
                      department=body.department)
    proof = body.second_factor
    done = service.verify(ctx, body.code, use,
                          second_factor=service.Proof(pin=proof.pin, sms_code=proof.sms_code) if proof else None)
    document = next((i for i in done.identifiers if i.system.startswith("doc:")), None)
    return VerifyOut(
        ehc_id=done.card.ehc_id,
        status=done.card.status,
        status_code=CardStatus(done.card.status).national_code,
        code_type=int(done.payload.type),
        national_plaintext=done.national_plaintext,
        holder=VerifiedHolderOut(
            name=done.details.name,
            sex=done.details.sex,
            birth_date=done.details.birth_date.isoformat() if done.details.birth_date else None,
            document_type=document.system[4:] if document else None,
            document_number=mask_number((document.system[4:], document.value)) if document else None,
        ),
        use_id=done.use.id,
    )

