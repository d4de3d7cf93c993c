"""The institution registry, departments, terminals and staff management, through the HTTP API (and
the CLI), on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest
from factories import make_staff
from stdnum.cn import uscc as stdnum_uscc

from ehc.kit import regions
from ehc.institutions.service import create_institution

PROBLEM = "application/problem+json"
_serial = itertools.count(1)


def valid_uscc(region: str = "510104", registrar: str = "12") -> str:
    """A fresh, valid unified social credit code: registrar + type, region, 9 characters, check."""
    body = f"{registrar}{region}{next(_serial):08d}X"
    return body + stdnum_uscc.calc_check_digit(body)


def hospital(region: str = "510104", **over) -> dict:
    body = {"uscc": valid_uscc(region), "name": "锦江区测试人民医院", "kind": "hospital", "region_code": region,
            "level": "3A"}
    body.update(over)
    return body


def problem(answer, status: int, code: str) -> dict:  # noqa: ANN001
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body = answer.json()
    assert body["code"] == code, body
    return body


def add_institution(platform, region: str = "510104", name: str = "另一家医院") -> str:  # noqa: ANN001
    with platform.db.session() as session:
        return create_institution(session, uscc=valid_uscc(region), name=name, kind="hospital",
                                  region_code=region, level="2A").id


@pytest.fixture
def platform_admin(platform, client) -> dict:  # noqa: ANN001
    return make_staff(platform, client, "platform_admin", None)


@pytest.fixture
def admin(platform, client, institution) -> dict:  # noqa: ANN001
    """The test hospital's institution admin."""
    return make_staff(platform, client, "institution_admin", institution)


# -- institutions ---------------------------------------------------------------------------------

def test_platform_admin_registers_an_institution_and_reads_it_back(client, platform_admin):
    code = valid_uscc()
    answer = client.post("/api/v1/institutions", json=hospital(uscc=code.lower(), level="2b"), headers=platform_admin)
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["uscc"] == code and made["level"] == "2B" and made["region_code"] == "510104"
    assert made["kind_label_zh"] == "医院" and made["level_label_zh"] == "二级乙等"

    again = client.get(f"/api/v1/institutions/{made['id']}", headers=platform_admin)
    assert again.status_code == 200 and again.json() == made

    ungraded = client.post("/api/v1/institutions", json=hospital(kind="pharmacy", level="none"),
                           headers=platform_admin)
    assert ungraded.status_code == 201 and ungraded.json()["level"] is None
    assert ungraded.json()["level_label_zh"] == "未定级"


def test_invalid_uscc_and_other_bad_values_are_field_problems(client, platform_admin):
    good = valid_uscc()
    wrong_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    for bad in (wrong_check, good[:-1], good[:9] + "I" + good[10:]):
        body = problem(client.post("/api/v1/institutions", json=hospital(uscc=bad), headers=platform_admin),
                       422, "uscc_invalid")
        assert body["errors"][0]["field"] == "uscc"

    cases = {
        "region_code": ("5101", "region_code_invalid"),
        "kind": ("spa", "kind_invalid"),
        "level": ("4A", "level_invalid"),
    }
    for field, (value, code) in cases.items():
        body = problem(client.post("/api/v1/institutions", json=hospital(**{field: value}), headers=platform_admin),
                       422, code)
        assert body["errors"][0]["field"] == field
    for region in ("990000", "510004"):  # no such province; a county without a prefecture
        problem(client.post("/api/v1/institutions", json=hospital(region_code=region), headers=platform_admin),
                422, "region_code_invalid")
    problem(client.post("/api/v1/institutions", json={"name": "x"}, headers=platform_admin), 422, "validation_failed")
    assert client.get("/api/v1/institutions", headers=platform_admin).json()["total"] == 0


def test_duplicate_uscc_is_a_conflict_and_nothing_is_written(client, platform_admin):
    first = hospital()
    assert client.post("/api/v1/institutions", json=first, headers=platform_admin).status_code == 201
    problem(client.post("/api/v1/institutions", json={**first, "name": "同一法人换个名字"}, headers=platform_admin),
            409, "uscc_taken")
    listing = client.get("/api/v1/institutions", headers=platform_admin).json()
    assert listing["total"] == 1 and listing["items"][0]["name"] == first["name"]


def test_concurrent_registrations_of_one_uscc_make_one_institution(client, platform_admin):
    from concurrent.futures import ThreadPoolExecutor

    body = hospital()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.post("/api/v1/institutions", json=body, headers=platform_admin),
                                range(6)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5, [a.text for a in answers]
    assert all(a.json()["code"] == "uscc_taken" for a in answers if a.status_code == 409)
    assert client.get("/api/v1/institutions", headers=platform_admin).json()["total"] == 1


def test_only_commission_operators_register_institutions(platform, client, institution):
    for role, inst in (("window_clerk", institution), ("institution_admin", institution), ("auditor", None)):
        headers = make_staff(platform, client, role, inst)
        problem(client.post("/api/v1/institutions", json=hospital(), headers=headers), 403, "role_not_allowed")
    problem(client.post("/api/v1/institutions", json=hospital()), 401, "unauthenticated")
    problem(client.get("/api/v1/institutions"), 401, "unauthenticated")


def test_regional_operator_works_inside_their_region_only(platform, client, platform_admin):
    chengdu = make_staff(platform, client, "regional_operator", None, region="510100")
    mianyang_id = client.post("/api/v1/institutions", json=hospital("510703", name="绵阳医院"),
                              headers=platform_admin).json()["id"]

    inside = client.post("/api/v1/institutions", json=hospital("510104", name="锦江医院"), headers=chengdu)
    assert inside.status_code == 201, inside.text
    city_level = client.post("/api/v1/institutions", json=hospital("510100", name="成都市医院"), headers=chengdu)
    assert city_level.status_code == 201
    problem(client.post("/api/v1/institutions", json=hospital("510703"), headers=chengdu), 403, "region_out_of_scope")
    problem(client.post("/api/v1/institutions", json=hospital("510000"), headers=chengdu), 403, "region_out_of_scope")

    listing = client.get("/api/v1/institutions", headers=chengdu).json()
    assert listing["total"] == 2 and {i["region_code"] for i in listing["items"]} == {"510104", "510100"}
    assert client.get("/api/v1/institutions?region_code=510703", headers=chengdu).json()["total"] == 0
    # Outside the region is answered exactly like a missing institution.
    outside = problem(client.get(f"/api/v1/institutions/{mianyang_id}", headers=chengdu), 404, "institution_not_found")
    missing = problem(client.get("/api/v1/institutions/no-such-id", headers=chengdu), 404, "institution_not_found")
    assert outside["detail"] == missing["detail"]
    problem(client.patch(f"/api/v1/institutions/{mianyang_id}", json={"name": "x"}, headers=chengdu),
            404, "institution_not_found")

    own = inside.json()["id"]
    renamed = client.patch(f"/api/v1/institutions/{own}", json={"name": "锦江区第二医院", "level": None},
                           headers=chengdu)
    assert renamed.status_code == 200 and renamed.json()["name"] == "锦江区第二医院" and renamed.json()["level"] is None
    assert renamed.json()["uscc"] == inside.json()["uscc"] and renamed.json()["updated_at"]
    problem(client.patch(f"/api/v1/institutions/{own}", json={"region_code": "510703"}, headers=chengdu),
            403, "region_out_of_scope")
    assert client.get(f"/api/v1/institutions/{own}", headers=chengdu).json()["region_code"] == "510104"

    # The province's operator sees all three; one without a region sees nothing.
    sichuan = make_staff(platform, client, "regional_operator", None, region="510000")
    assert client.get("/api/v1/institutions", headers=sichuan).json()["total"] == 3
    nowhere = make_staff(platform, client, "regional_operator", None)
    assert client.get("/api/v1/institutions", headers=nowhere).json()["total"] == 0
    problem(client.post("/api/v1/institutions", json=hospital(), headers=nowhere), 403, "region_out_of_scope")


def test_institution_staff_see_only_their_own_institution(platform, client, institution):
    other = add_institution(platform)
    doctor = make_staff(platform, client, "doctor", institution)
    listing = client.get("/api/v1/institutions", headers=doctor).json()
    assert [i["id"] for i in listing["items"]] == [institution]
    assert client.get(f"/api/v1/institutions/{institution}", headers=doctor).status_code == 200
    problem(client.get(f"/api/v1/institutions/{other}", headers=doctor), 404, "institution_not_found")
    problem(client.patch(f"/api/v1/institutions/{institution}", json={"name": "x"}, headers=doctor),
            403, "role_not_allowed")


# -- departments ----------------------------------------------------------------------------------

def test_institution_admin_manages_departments(platform, client, institution, admin):
    base = f"/api/v1/institutions/{institution}/departments"
    general = client.post(base, json={"code": "0300"}, headers=admin)
    assert general.status_code == 201, general.text
    assert general.json()["name"] == "内科" and general.json()["standard_label"] == "Internal medicine"
    cardio = client.post(base, json={"code": "0304", "name": "心血管内科"}, headers=admin)
    assert cardio.status_code == 201 and cardio.json()["standard_label_zh"] == "心血管内科专业"
    assert client.post(base, json={"code": "1000"}, headers=admin).json()["name"] == "眼科"

    problem(client.post(base, json={"code": "0300", "name": "大内科"}, headers=admin), 409, "department_code_taken")
    for bad in ("030", "9900", "03a0"):
        body = problem(client.post(base, json={"code": bad}, headers=admin), 422, "department_code_invalid")
        assert body["errors"][0]["field"] == "code"

    assert [d["code"] for d in client.get(base, headers=admin).json()] == ["0300", "0304", "1000"]
    renamed = client.patch(f"{base}/0304", json={"name": "心内科"}, headers=admin)
    assert renamed.status_code == 200 and renamed.json()["name"] == "心内科"
    assert client.get(f"{base}/0304", headers=admin).json()["name"] == "心内科"
    assert client.delete(f"{base}/1000", headers=admin).status_code == 204
    problem(client.get(f"{base}/1000", headers=admin), 404, "department_not_found")

    # The hospital's doctors read them but do not change them.
    doctor = make_staff(platform, client, "doctor", institution)
    assert len(client.get(base, headers=doctor).json()) == 2
    problem(client.post(base, json={"code": "0400"}, headers=doctor), 403, "role_not_allowed")


def test_another_institutions_admin_is_refused(platform, client, institution, admin):
    other = add_institution(platform)
    other_admin = make_staff(platform, client, "institution_admin", other)
    assert client.post(f"/api/v1/institutions/{institution}/departments", json={"code": "0300"},
                       headers=admin).status_code == 201
    base = f"/api/v1/institutions/{institution}"
    problem(client.post(f"{base}/departments", json={"code": "0400"}, headers=other_admin), 404, "institution_not_found")
    problem(client.get(f"{base}/departments", headers=other_admin), 404, "institution_not_found")
    problem(client.patch(f"{base}/departments/0300", json={"name": "x"}, headers=other_admin),
            404, "institution_not_found")
    problem(client.delete(f"{base}/departments/0300", headers=other_admin), 404, "institution_not_found")
    problem(client.post(f"{base}/terminals", json={"terminal_id": "W09", "role": "window"}, headers=other_admin),
            404, "institution_not_found")
    problem(client.post(f"{base}/staff", json={"username": "intruder", "password": "correct horse battery",
                                               "role": "institution_admin"}, headers=other_admin),
            404, "institution_not_found")
    problem(client.get(f"{base}/staff", headers=other_admin), 404, "institution_not_found")
    assert client.get(f"{base}/departments/0300", headers=admin).json()["name"] == "内科"


# -- terminals ------------------------------------------------------------------------------------

def test_institution_admin_registers_and_retires_terminals(platform, client, institution, admin):
    base = f"/api/v1/institutions/{institution}"
    assert client.post(f"{base}/departments", json={"code": "0300"}, headers=admin).status_code == 201

    window = client.post(f"{base}/terminals", json={"terminal_id": "W01", "role": "window", "name": "门诊一楼1号窗口"},
                         headers=admin)
    assert window.status_code == 201, window.text
    assert window.json()["type_code"] == "01" and window.json()["channel"] == "0100" and window.json()["status"] == "active"
    kiosk = client.post(f"{base}/terminals", json={"terminal_id": "K01", "role": "kiosk", "type_code": "02"},
                        headers=admin).json()
    assert kiosk["type_code"] == "02" and kiosk["channel"] == "0200"
    desk = client.post(f"{base}/terminals", json={"terminal_id": "D-0300.1", "role": "workstation",
                                                  "department_code": "0300"}, headers=admin).json()
    assert desk["type_code"] == "99" and desk["channel"] == "0300" and desk["department_code"] == "0300"

    problem(client.post(f"{base}/terminals", json={"terminal_id": "W01", "role": "window"}, headers=admin),
            409, "terminal_id_taken")
    problem(client.post(f"{base}/terminals", json={"terminal_id": "W02", "role": "window", "type_code": "02"},
                        headers=admin), 422, "terminal_type_mismatch")
    problem(client.post(f"{base}/terminals", json={"terminal_id": "W03", "role": "window", "department_code": "0400"},
                        headers=admin), 422, "department_not_found")
    problem(client.post(f"{base}/terminals", json={"terminal_id": "W 04", "role": "window"}, headers=admin),
            422, "terminal_id_invalid")
    problem(client.post(f"{base}/terminals", json={"terminal_id": "X01", "role": "printer"}, headers=admin),
            422, "terminal_role_invalid")

    # A department with a terminal stays; the terminal can move out of it, or be retired.
    problem(client.delete(f"{base}/departments/0300", headers=admin), 409, "department_in_use")
    moved = client.patch(f"{base}/terminals/D-0300.1", json={"department_code": None}, headers=admin)
    assert moved.status_code == 200 and moved.json()["department_code"] is None
    retired = client.patch(f"{base}/terminals/K01", json={"status": "retired"}, headers=admin)
    assert retired.json()["status"] == "retired" and retired.json()["retired_at"]
    problem(client.patch(f"{base}/terminals/K01", json={"status": "broken"}, headers=admin),
            422, "terminal_status_invalid")
    assert [t["terminal_id"] for t in client.get(f"{base}/terminals?status=active", headers=admin).json()] == [
        "D-0300.1", "W01"]
    assert len(client.get(f"{base}/terminals", headers=admin).json()) == 3
    problem(client.get(f"{base}/terminals/nope", headers=admin), 404, "terminal_not_found")

    # The same terminal id may exist at another institution.
    other = add_institution(platform)
    other_admin = make_staff(platform, client, "institution_admin", other)
    assert client.post(f"/api/v1/institutions/{other}/terminals", json={"terminal_id": "W01", "role": "window"},
                       headers=other_admin).status_code == 201
    problem(client.patch(f"{base}/terminals/W01", json={"status": "retired"}, headers=other_admin),
            404, "institution_not_found")
    assert client.get(f"{base}/terminals/W01", headers=admin).json()["status"] == "active"


def test_platform_admin_manages_any_institution(platform, client, institution, platform_admin):
    base = f"/api/v1/institutions/{institution}"
    assert client.post(f"{base}/departments", json={"code": "2000"}, headers=platform_admin).status_code == 201
    first_admin = client.post(f"{base}/staff", json={"username": "first.admin", "password": "correct horse battery",
                                                     "role": "institution_admin"}, headers=platform_admin)
    assert first_admin.status_code == 201 and first_admin.json()["institution_id"] == institution
    problem(client.post("/api/v1/institutions/nope/departments", json={"code": "2000"}, headers=platform_admin),
            404, "institution_not_found")


# -- staff ----------------------------------------------------------------------------------------

def sign_in(client, username: str, password: str = "correct horse battery"):  # noqa: ANN001, ANN201
    return client.post("/api/v1/auth/staff/token", json={"username": username, "password": password})


def test_institution_admin_creates_and_lists_staff(platform, client, institution, admin):
    base = f"/api/v1/institutions/{institution}/staff"
    made = client.post(base, json={"username": "wang.clerk", "password": "correct horse battery",
                                   "role": "window_clerk", "display_name": "王 窗口"}, headers=admin)
    assert made.status_code == 201, made.text
    clerk = made.json()
    assert clerk["role"] == "window_clerk" and clerk["institution_id"] == institution and clerk["active"] is True
    assert clerk["region_code"] is None and clerk["failed_sign_ins"] == 0 and clerk["slowed_down"] is False

    token = sign_in(client, "wang.clerk")
    assert token.status_code == 200 and token.json()["institution_id"] == institution

    listing = client.get(base, headers=admin)
    assert listing.status_code == 200
    assert "wang.clerk" in {s["username"] for s in listing.json()}
    assert all(s["institution_id"] == institution for s in listing.json())
    assert "password" not in listing.text and "argon2" not in listing.text and "hash" not in listing.text
    assert client.get(f"{base}/{clerk['id']}", headers=admin).json()["username"] == "wang.clerk"

    problem(client.post(base, json={"username": "wang.clerk", "password": "correct horse battery",
                                    "role": "doctor"}, headers=admin), 409, "username_taken")
    problem(client.post(base, json={"username": "li.nurse", "password": "short", "role": "nurse"}, headers=admin),
            422, "password_too_short")
    problem(client.post(base, json={"username": "a b", "password": "correct horse battery", "role": "nurse"},
                        headers=admin), 422, "username_invalid")
    problem(client.post(base, json={"username": "li.nurse", "password": "correct horse battery", "role": "surgeon"},
                        headers=admin), 422, "role_unknown")


def test_staff_are_placed_in_a_department_of_their_institution(platform, client, institution, admin, platform_admin):
    """A staff account may belong to one of its institution's departments (health records' department
    grants read it); a code the institution has not registered is refused at the field, null clears it,
    and commission staff have none."""
    client.post(f"/api/v1/institutions/{institution}/departments", json={"code": "0300"}, headers=admin)
    base = f"/api/v1/institutions/{institution}/staff"
    made = client.post(base, json={"username": "zhao.internist", "password": "correct horse battery", "role": "doctor",
                                   "department_code": "0300"}, headers=admin)
    assert made.status_code == 201 and made.json()["department_code"] == "0300", made.text
    body = problem(client.post(base, json={"username": "qian.surgeon", "password": "correct horse battery",
                                           "role": "doctor", "department_code": "0400"}, headers=admin),
                   422, "department_not_found")
    assert body["errors"][0]["field"] == "department_code"
    staff_id = made.json()["id"]
    problem(client.patch(f"{base}/{staff_id}", json={"department_code": "0400"}, headers=admin), 422, "department_not_found")
    cleared = client.patch(f"{base}/{staff_id}", json={"department_code": None}, headers=admin)
    assert cleared.status_code == 200 and cleared.json()["department_code"] is None
    placed = client.patch(f"{base}/{staff_id}", json={"department_code": "0300"}, headers=admin)
    assert placed.json()["department_code"] == "0300"
    auditor = client.post("/api/v1/commission/staff", json={"username": "sun.auditor", "password": "correct horse battery",
                                                             "role": "auditor"}, headers=platform_admin).json()
    problem(client.patch(f"/api/v1/commission/staff/{auditor['id']}", json={"department_code": "0300"},
                         headers=platform_admin), 422, "department_not_allowed")


def test_roles_outside_the_scope_are_refused(platform, client, institution, admin, platform_admin):
    base = f"/api/v1/institutions/{institution}/staff"
    for role in ("platform_admin", "regional_operator", "auditor"):
        body = problem(client.post(base, json={"username": f"x.{role}", "password": "correct horse battery",
                                               "role": role}, headers=admin), 422, "role_out_of_scope")
        assert body["errors"][0]["field"] == "role"
    for role in ("window_clerk", "institution_admin"):
        problem(client.post("/api/v1/commission/staff", json={"username": f"y.{role}", "password": "correct horse battery",
                                                              "role": role}, headers=platform_admin),
                422, "role_out_of_scope")
    # Staff management is the admins' job: other roles get 403.
    doctor = make_staff(platform, client, "doctor", institution)
    problem(client.post(base, json={"username": "z.doc", "password": "correct horse battery", "role": "doctor"},
                        headers=doctor), 403, "role_not_allowed")
    problem(client.get(base, headers=doctor), 403, "role_not_allowed")
    problem(client.get("/api/v1/commission/staff", headers=admin), 403, "role_not_allowed")
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    problem(client.post("/api/v1/commission/staff", json={"username": "w.op", "password": "correct horse battery",
                                                          "role": "regional_operator", "region_code": "510000"},
                        headers=operator), 403, "role_not_allowed")
    # A role change stays within the scope as well.
    clerk = client.post(base, json={"username": "q.clerk", "password": "correct horse battery", "role": "window_clerk"},
                        headers=admin).json()
    problem(client.patch(f"{base}/{clerk['id']}", json={"role": "platform_admin"}, headers=admin),
            422, "role_out_of_scope")
    promoted = client.patch(f"{base}/{clerk['id']}", json={"role": "cashier"}, headers=admin)
    assert promoted.status_code == 200 and promoted.json()["role"] == "cashier"


def test_disabled_staff_token_stops_working(platform, client, institution, admin):
    base = f"/api/v1/institutions/{institution}/staff"
    clerk = client.post(base, json={"username": "zhao.clerk", "password": "correct horse battery",
                                    "role": "window_clerk"}, headers=admin).json()
    headers = {"Authorization": f"Bearer {sign_in(client, 'zhao.clerk').json()['access_token']}"}
    assert client.get(f"/api/v1/institutions/{institution}", headers=headers).status_code == 200

    disabled = client.patch(f"{base}/{clerk['id']}", json={"active": False}, headers=admin)
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    problem(client.get(f"/api/v1/institutions/{institution}", headers=headers), 401, "token_invalid")
    problem(sign_in(client, "zhao.clerk"), 401, "sign_in_failed")

    enabled = client.patch(f"{base}/{clerk['id']}", json={"active": True}, headers=admin)
    assert enabled.json()["active"] is True
    # The old session stays ended; a new sign-in works.
    problem(client.get(f"/api/v1/institutions/{institution}", headers=headers), 401, "token_invalid")
    fresh = {"Authorization": f"Bearer {sign_in(client, 'zhao.clerk').json()['access_token']}"}
    assert client.get(f"/api/v1/institutions/{institution}", headers=fresh).status_code == 200


def test_admin_cannot_lock_themselves_out_nor_reach_other_staff(platform, client, institution, admin):
    base = f"/api/v1/institutions/{institution}/staff"
    me = next(s for s in client.get(base, headers=admin).json() if s["role"] == "institution_admin")
    problem(client.patch(f"{base}/{me['id']}", json={"active": False}, headers=admin), 409, "own_account_change_refused")
    problem(client.patch(f"{base}/{me['id']}", json={"role": "doctor"}, headers=admin), 409, "own_account_change_refused")
    assert client.patch(f"{base}/{me['id']}", json={"display_name": "管理员"}, headers=admin).status_code == 200

    other = add_institution(platform)
    stranger = make_staff(platform, client, "window_clerk", other)
    assert stranger
    with platform.db.session() as session:
        from ehc.accounts.service import list_staff
        from ehc.kit.context import Actor

        stranger_id = list_staff(platform.ctx(session, Actor.system()), other)[0].id
    problem(client.patch(f"{base}/{stranger_id}", json={"active": False}, headers=admin), 404, "staff_not_found")
    problem(client.get(f"{base}/{stranger_id}", headers=admin), 404, "staff_not_found")


def test_platform_admin_manages_commission_staff(platform, client, institution, platform_admin):
    base = "/api/v1/commission/staff"
    problem(client.post(base, json={"username": "op.none", "password": "correct horse battery",
                                    "role": "regional_operator"}, headers=platform_admin), 422, "region_required")
    problem(client.post(base, json={"username": "op.bad", "password": "correct horse battery",
                                    "role": "regional_operator", "region_code": "5101"}, headers=platform_admin),
            422, "region_code_invalid")
    made = client.post(base, json={"username": "op.chengdu", "password": "correct horse battery",
                                   "role": "regional_operator", "region_code": "510100"}, headers=platform_admin)
    assert made.status_code == 201 and made.json()["region_code"] == "510100" and made.json()["institution_id"] is None
    auditor = client.post(base, json={"username": "audit.sc", "password": "correct horse battery", "role": "auditor"},
                          headers=platform_admin)
    assert auditor.status_code == 201

    # The new operator works at once, within the region given.
    operator = {"Authorization": f"Bearer {sign_in(client, 'op.chengdu').json()['access_token']}"}
    assert client.post("/api/v1/institutions", json=hospital("510104"), headers=operator).status_code == 201
    problem(client.post("/api/v1/institutions", json=hospital("510703"), headers=operator), 403, "region_out_of_scope")

    make_staff(platform, client, "doctor", institution)
    listing = client.get(base, headers=platform_admin).json()
    assert {s["username"] for s in listing} >= {"op.chengdu", "audit.sc"}
    assert all(s["institution_id"] is None for s in listing) and "hash" not in json.dumps(listing)

    op_id = made.json()["id"]
    problem(client.patch(f"{base}/{op_id}", json={"region_code": None}, headers=platform_admin), 422, "region_required")
    moved = client.patch(f"{base}/{op_id}", json={"region_code": "510700"}, headers=platform_admin)
    assert moved.status_code == 200 and moved.json()["region_code"] == "510700"
    assert client.post("/api/v1/institutions", json=hospital("510703"), headers=operator).status_code == 201
    assert client.patch(f"{base}/{op_id}", json={"active": False}, headers=platform_admin).json()["active"] is False
    problem(client.get("/api/v1/institutions", headers=operator), 401, "token_invalid")

    # Institution staff are not reachable through the commission's door.
    doctor_id = next(s["id"] for s in client.get(f"/api/v1/institutions/{institution}/staff",
                                                 headers=platform_admin).json())
    problem(client.get(f"{base}/{doctor_id}", headers=platform_admin), 404, "staff_not_found")


def test_auditor_reads_institutions_but_does_not_change_them(platform, client, platform_admin):
    made = client.post("/api/v1/institutions", json=hospital(), headers=platform_admin).json()
    auditor = make_staff(platform, client, "auditor", None)
    assert client.get(f"/api/v1/institutions/{made['id']}", headers=auditor).status_code == 200
    problem(client.patch(f"/api/v1/institutions/{made['id']}", json={"name": "x"}, headers=auditor),
            403, "role_not_allowed")
    regional_auditor = make_staff(platform, client, "auditor", None, region="510700")
    problem(client.get(f"/api/v1/institutions/{made['id']}", headers=regional_auditor), 404, "institution_not_found")


def test_code_lists_are_published(client):
    departments = {d["code"]: d for d in client.get("/api/v1/institutions/codes/departments").json()}
    assert departments["0300"]["label_zh"] == "内科" and departments["2000"]["label"] == "Emergency medicine"
    assert departments["3200"]["label_zh"] == "医学影像科" and departments["1100"]["label_zh"] == "耳鼻咽喉科"
    roles = {r["code"]: r for r in client.get("/api/v1/institutions/codes/terminal-roles").json()}
    assert "type 01" in roles["window"]["label"] and "type 02" in roles["kiosk"]["label"]


# -- rules without the database -------------------------------------------------------------------

@pytest.mark.parametrize(("code", "region", "inside"), [
    ("510104", "510100", True), ("510100", "510100", True), ("510703", "510100", False),
    ("510703", "510000", True), ("510104", "510104", True), ("510105", "510104", False),
    ("110101", "510000", False),
])
def test_region_containment(code, region, inside):
    assert regions.region_within(code, region) is inside


@pytest.mark.parametrize(("code", "ok"), [
    ("510104", True), ("510000", True), ("469001", True), ("820000", True),
    ("5101", False), ("51010a", False), ("000000", False), ("990101", False), ("510004", False), (510104, False),
])
def test_region_form(code, ok):
    assert (regions.region_problem(code) is None) is ok


# -- the CLI --------------------------------------------------------------------------------------

def test_cli_creates_institutions_departments_and_terminals(settings):
    env = {**os.environ, "EHC_DATABASE_URL": settings.database_url, "EHC_KEYS_DIR": str(settings.keys_dir),
           "EHC_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}

    def ehc(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "ehc.cli", "institutions", *args], env=env,
                              capture_output=True, text=True, timeout=120)
        assert (done.returncode == 0) is ok, done.stderr + done.stdout
        return done

    code = valid_uscc("510107")
    made = json.loads(ehc("create", "--uscc", code, "--name", "武侯区测试医院", "--kind", "hospital",
                          "--region", "510107", "--level", "3B").stdout)
    assert made["uscc"] == code and made["level"] == "3B"
    dup = ehc("create", "--uscc", code, "--name", "x", "--kind", "hospital", "--region", "510107", ok=False)
    assert dup.returncode == 2 and "uscc_taken" in dup.stderr
    assert json.loads(ehc("add-department", made["id"], "0500").stdout)["name"] == "妇产科"
    terminal = json.loads(ehc("add-terminal", made["id"], "W01", "--role", "window", "--department", "0500").stdout)
    assert terminal["type_code"] == "01" and terminal["department_code"] == "0500"
    assert "武侯区测试医院" in ehc("list", "--region", "510100").stdout
