"""Reporting a card lost, or cancelling it, ends the resident sessions that draw its codes
(docs/qr-format.md §9.1, ``me.service.end_code_drawing_sessions``): the holder's and their
guardians' sign-ins, API tokens and page cookies alike; a resident reporting from the phone they still
hold keeps that one session.
On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date

import pytest
from factories import bearer
from residents import resident_id

from ehc.accounts import service as accounts
from ehc.cards.models import Card

PHONE = "13912340077"
HOLDER = {"name": "孙丽华", "document": {"type": "01", "number": resident_id(born=date(1979, 9, 9), sequence=51,
                                                                          male=False)},
          "sex": "2", "birth_date": "1979-09-09", "phone": PHONE}
CHILD = {"name": "孙小宝", "document": {"type": "01", "number": resident_id(born=date(2016, 6, 6), sequence=52)},
         "sex": "1", "birth_date": "2016-06-06", "relation": "child"}


def another_sign_in(platform, ehc_id: str) -> str:
    """A second sign-in of the holder (their other phone, or the lost one), as its raw token."""
    with platform.db.session() as session:
        return accounts.issue_token(session, "resident", session.get(Card, ehc_id).person_id)


@pytest.fixture
def holder_person() -> dict:
    return HOLDER


def works(client, headers: dict[str, str]) -> bool:
    answer = client.get("/api/v1/me/card", headers=headers)
    if answer.status_code == 401:
        assert answer.json()["code"] == "token_invalid", answer.text
        return False
    assert answer.status_code == 200, answer.text
    return True


def page_signed_in(client, token: str) -> bool:
    """Whether the /me page accepts ``token`` as its cookie (else it sends the visitor to sign in)."""
    client.cookies.clear()
    client.cookies.set("ehc_resident", token)
    answer = client.get("/me", follow_redirects=False)
    client.cookies.clear()
    assert answer.status_code in (200, 303, 307), answer.text
    return answer.status_code == 200


@pytest.mark.parametrize("action,body", [("report-lost", {"reason": "phone stolen"}),
                                         ("cancel", {"reason": "holder asked to close the card"})])
def test_a_clerk_reporting_the_card_lost_or_cancelling_it_ends_every_session(client, platform, clerk, holder,
                                                                              action, body) -> None:
    ehc_id, resident = holder
    cookie = another_sign_in(platform, ehc_id)
    assert works(client, resident) and page_signed_in(client, cookie)
    assert client.post("/api/v1/me/qr/dynamic", headers=resident).status_code == 200

    answer = client.post(f"/api/v1/cards/{ehc_id}/{action}", json=body, headers=clerk)
    assert answer.status_code == 200, answer.text

    assert not works(client, resident)
    assert client.post("/api/v1/me/qr/dynamic", headers=resident).status_code == 401
    assert not page_signed_in(client, cookie)


def test_a_resident_reporting_their_own_loss_keeps_the_session_they_report_from(client, platform, holder) -> None:
    ehc_id, phone_in_hand = holder
    lost_phone = bearer(another_sign_in(platform, ehc_id))
    assert works(client, lost_phone)

    answer = client.post("/api/v1/me/card/report-lost", json={"reason": "old phone lost"}, headers=phone_in_hand)
    assert answer.status_code == 200 and answer.json()["status"] == "lost", answer.text

    assert not works(client, lost_phone)
    assert works(client, phone_in_hand)  # and it sees its card, now lost
    assert client.get("/api/v1/me/card", headers=phone_in_hand).json()["status"] == "lost"
    # The lost card draws no codes anyway; after a reissue, only the kept session draws them.
    drawn = client.post("/api/v1/me/qr/dynamic", headers=phone_in_hand)
    assert drawn.status_code == 409 and drawn.json()["code"] == "card_not_active"


def test_a_guardians_sessions_end_when_a_family_members_card_is_lost(client, platform, clerk, holder) -> None:
    ehc_id, guardian = holder
    bound = client.post("/api/v1/me/family", json=CHILD, headers=guardian)
    assert bound.status_code == 201, bound.text
    child = bound.json()["ehc_id"]
    second = bearer(another_sign_in(platform, ehc_id))

    # The guardian reports it from one phone: that one stays, the other (it drew the child's codes too) ends.
    lost = client.post(f"/api/v1/me/family/{child}/report-lost", json={"reason": "lost at school"}, headers=guardian)
    assert lost.status_code == 200, lost.text
    assert works(client, guardian) and not works(client, second)

    # Recovered at the window, then reported lost there: no session is kept.
    assert client.post(f"/api/v1/cards/{child}/recover", json={}, headers=clerk).status_code == 200
    assert works(client, guardian)  # recovering ends nothing
    assert client.post(f"/api/v1/cards/{child}/report-lost", json={"reason": "lost again"},
                       headers=clerk).status_code == 200
    assert not works(client, guardian)


def test_other_steps_and_other_cards_end_nothing(client, platform, clerk, holder) -> None:
    ehc_id, resident = holder
    stranger = client.post("/api/v1/cards", json={
        "name": "周大海", "document": {"type": "01", "number": resident_id(born=date(1966, 3, 3), sequence=53)},
        "sex": "1", "birth_date": "1966-03-03"}, headers=clerk).json()["ehc_id"]
    assert client.post(f"/api/v1/cards/{stranger}/report-lost", json={"reason": "lost"}, headers=clerk).status_code == 200
    assert client.post(f"/api/v1/cards/{ehc_id}/reissue", json={}, headers=clerk).status_code == 200
    assert client.patch(f"/api/v1/cards/{ehc_id}", json={"address": "成都市青羊区", "reason": "moved"},
                        headers=clerk).status_code == 200
    assert works(client, resident)


def test_the_report_lost_page_keeps_the_browser_that_reports(client, platform, holder) -> None:
    ehc_id, api_session = holder
    browser = another_sign_in(platform, ehc_id)
    client.cookies.set("ehc_resident", browser)
    form = client.get("/me/report-lost")
    assert form.status_code == 200, form.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    answer = client.post("/me/report-lost", data={"reason": "lost", "details": "", "csrf_token": csrf},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert page_signed_in(client, browser)
    assert not works(client, api_session)
