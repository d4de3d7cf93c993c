"""Input the database cannot take is refused at the edge, for every door, never a 500."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("url", [
    "/api/v1/cards/%00",
    "/api/v1/cards/ABC%00DEF",
    "/api/v1/institutions?region_code=51%00",
    "/staff/print?ehc_id=%00",
])
def test_a_nul_in_a_path_or_query_is_refused(client, clerk, url):
    answer = client.get(url, headers=clerk)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "nul_character" and answer.headers["X-Request-ID"]


@pytest.mark.parametrize("url", ["/fhir/Patient/%00", "/fhir/Patient?family=%00", "/fhir/metadata?x=%00"])
def test_the_fhir_door_refuses_a_nul_with_an_operation_outcome(client, clerk, url):
    from test_fhir import outcome_code

    answer = client.get(url, headers=clerk)
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("application/fhir+json")
    assert outcome_code(answer.json()) == "nul_character"


def test_a_nul_in_a_json_or_form_body_is_refused_before_anyone_signs_in(client):
    staff = client.post("/api/v1/auth/staff/token", json={"username": "a\u0000", "password": "x"})
    assert staff.status_code == 400 and staff.json()["code"] == "nul_character"
    form = client.post("/staff/sign-in", data={"username": "a\x00", "password": "x"})
    assert form.status_code == 400 and form.json()["code"] == "nul_character"
    # Zero bytes in a body that is not text (an image, a file) are nobody's business here.
    image = client.post("/api/v1/auth/staff/token", content=b"\x89PNG\x00\x00", headers={"Content-Type": "image/png"})
    assert image.status_code != 400 or image.json()["code"] != "nul_character"


@pytest.mark.parametrize("url", [
    "/api/v1/mpi/reviews/70368744177664",
    "/api/v1/mpi/reviews/99999999999999999999",
    "/api/v1/institutions?offset=99999999999999999999",
    "/api/v1/audit/events?before=99999999999999999999",
])
def test_numbers_beyond_what_the_database_holds_are_a_clients_error(client, platform, url):
    from factories import make_staff

    admin = make_staff(platform, client, "platform_admin", None)
    answer = client.get(url, headers=admin)
    assert answer.status_code in (404, 422), answer.text
    if answer.status_code == 422:
        assert answer.json()["code"] in ("value_out_of_range", "validation_failed")


def test_a_method_the_route_does_not_take_names_the_ones_it_does(client):
    answer = client.request("TRACE", "/api/v1/cards")
    assert answer.status_code == 405 and answer.json()["code"] == "method_not_allowed"
    assert "POST" in answer.headers["Allow"]


def test_a_failed_statement_never_carries_its_values_into_messages_or_logs(platform):
    """Tracebacks are logged for unexpected errors: the statement's bound values (names, usernames,
    blind indexes) must not be in them."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as failed:
        with platform.db.session() as session:
            session.execute(text("INSERT INTO no_such_table (name) VALUES (:name)"), {"name": "王小明 13912345678"})
    assert "13912345678" not in str(failed.value) and "王小明" not in str(failed.value)
    assert "no_such_table" in str(failed.value)  # the statement itself is still there to debug with
