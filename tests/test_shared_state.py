"""State every worker process shares through Redis: rate limits and signed requests' nonces, and the
embedded fallback (limits in the process, nonces in the database) when ``EHC_REDIS_URL`` is unset.

These run in one process against the Redis on 127.0.0.1:6379 (``.ci/run`` starts it), each test under
a prefix of its own; tests/test_many_workers.py runs several real server processes."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
import redis
from factories import hospital_system
from fastapi.testclient import TestClient
from residents import resident_id
from typer.testing import CliRunner

from sqlalchemy import event

from ehc.apps import service as apps_service
from ehc.apps import signing
from ehc.app import create_app
from ehc.client import SM2Auth
from ehc.crypto import SM2PrivateKey
from ehc.db import Database
from ehc.kit.context import Actor, Ctx
from ehc.cli import app as cli_app
from ehc.config import Settings
from ehc.kit.claims import SharedClaims
from ehc.kit.ratelimit import RateLimited, RateLimiter, SharedRateLimiter
from ehc.kit.shared import SharedStateUnavailable, durability
from ehc.platform import Platform

REDIS_URL = os.environ.get("EHC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client):  # noqa: ANN001
    """A key prefix of this test's own; its keys are removed afterwards."""
    value = f"ehc-test-{secrets.token_hex(4)}:"
    yield value
    keys = list(redis_client.scan_iter(match=value + "*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def shared_platform(platform: Platform, prefix: str):  # noqa: ANN001
    """The test's platform (its database emptied), built again with Redis for its shared state."""
    settings = dataclasses.replace(platform.settings, redis_url=REDIS_URL, redis_prefix=prefix,
                                   rate_limit_identity=8, rate_limit_anonymous=8)
    return Platform(settings=settings, db=platform.db, keys=platform.keys, vault=platform.vault)


def test_one_bucket_across_limiters_sharing_redis(redis_client, prefix):  # noqa: ANN001
    # Two limiters on one Redis stand for two worker processes: the burst (2 of 8 a minute, a token
    # back every 7.5 s) is spent once between them, whichever serves the request.
    first, second = SharedRateLimiter(redis_client, 8, prefix), SharedRateLimiter(redis_client, 8, prefix)
    first.check("app:1")
    second.check("app:1")
    for limiter in (first, second):
        with pytest.raises(RateLimited) as refused:
            limiter.check("app:1")
        assert refused.value.status == 429 and 1 <= refused.value.extra["retry_after"] <= 8
    second.check("app:2")  # another caller has its own allowance
    assert all(0 < redis_client.pttl(k) <= 16_000 for k in redis_client.scan_iter(match=prefix + "rl:*"))
    SharedRateLimiter(redis_client, 0, prefix).check("anything")  # 0 means off

    # Tokens come back with time (Redis's clock): at 60 a minute, one a second.
    steady = SharedRateLimiter(redis_client, 60, prefix)
    for _ in range(100):
        try:
            steady.check("app:3")
        except RateLimited:
            break
    else:
        pytest.fail("a burst of 15 let 100 requests through")
    time.sleep(1.1)
    steady.check("app:3")


def test_racing_workers_never_take_more_than_the_burst(redis_client, prefix):  # noqa: ANN001
    limiters = [SharedRateLimiter(redis.Redis.from_url(REDIS_URL), 40, prefix) for _ in range(4)]  # bursts of 10

    def attempt(i: int) -> bool:
        try:
            limiters[i % 4].check("ip:10.0.0.1")
            return True
        except RateLimited:
            return False

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        let_in = sum(pool.map(attempt, range(40)))
    # The burst, plus a token for every 1.5 s the race took on a busy machine; never 4 bursts.
    assert 10 <= let_in <= 10 + int((time.monotonic() - started) / 1.5), let_in


def test_a_dead_redis_lets_requests_through_but_claims_nothing():
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    SharedRateLimiter(dead, 1, "x:").check("app:1")  # the limit caps runaways; it does not stop the platform
    with pytest.raises(SharedStateUnavailable) as refused:
        SharedClaims(dead, "x:", "nonce").claim("app:n", 300)
    assert refused.value.status == 503 and refused.value.code == "shared_state_unavailable"


def test_shared_claims_are_claimed_once_and_expire(redis_client, prefix):  # noqa: ANN001
    claims = SharedClaims(redis_client, prefix, "nonce")
    assert claims.claim("app:abc", 2) is True
    assert claims.claim("app:abc", 2) is False
    assert SharedClaims(redis_client, prefix, "nonce").claim("app2:abc", 2) is True  # another key
    assert 0 < redis_client.ttl(prefix + "nonce:app:abc") <= 2
    time.sleep(2.2)
    assert claims.claim("app:abc", 2) is True


def test_durability_is_what_redis_is_configured_for(redis_client):  # noqa: ANN001
    # .ci/run runs Redis with appendonly yes and appendfsync always: a claim it acknowledged is on disk.
    config = redis_client.config_get("append*")
    durable = (config["appendonly"], config["appendfsync"]) == ("yes", "always")
    assert (durability(redis_client) is None) is durable


def _signed(creds, method: str, path: str, body: bytes = b"", nonce: str | None = None) -> dict:  # noqa: ANN001
    headers = signing.sign(creds.private_key, method=method, path=path, query="", body=body, app_id=creds.app_id,
                           key_id=creds.key_id, nonce=nonce)
    return {**headers, "Content-Type": "application/json"} if body else headers


def test_signed_requests_claim_their_nonce_in_redis_not_the_database(shared_platform, prefix, redis_client,  # noqa: ANN001
                                                                      institution):
    his = hospital_system(shared_platform, institution)
    body = json.dumps({"name": "李小红", "document": {"type": "01", "number": resident_id(
        born=date(1979, 2, 3), sequence=77, male=False)}, "sex": "2", "birth_date": "1979-02-03"}).encode()
    headers = _signed(his, "POST", "/api/v1/cards", body)
    with TestClient(create_app(shared_platform), raise_server_exceptions=False) as client:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: client.post("/api/v1/cards", content=body, headers=headers), range(6)))
        assert sorted(a.status_code for a in answers) == [201] + [401] * 5, [a.text for a in answers]
        assert {a.json()["code"] for a in answers if a.status_code == 401} == {"nonce_replayed"}
    nonce = headers[signing.HEADER_NONCE]
    assert redis_client.exists(f"{prefix}nonce:{his.app_id}:{nonce}")
    assert 290 < redis_client.ttl(f"{prefix}nonce:{his.app_id}:{nonce}") <= 602
    with shared_platform.db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM app_nonces").scalar_one() == 0


def test_the_api_limits_through_redis(shared_platform):  # noqa: ANN001
    with TestClient(create_app(shared_platform), raise_server_exceptions=False) as client:
        codes = [client.get("/api/v1/cards/" + "A" * 64).status_code for _ in range(3)]  # bursts of 2
    assert codes[-1] == 429


def test_without_redis_the_embedded_fallback(platform):  # noqa: ANN001
    assert platform.redis is None and isinstance(platform.limiters["machine"], RateLimiter)
    assert type(platform.nonces).__name__ == "DatabaseNonces"


def test_several_workers_need_redis(monkeypatch, tmp_path):  # noqa: ANN001
    monkeypatch.setenv("EHC_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/none")
    monkeypatch.delenv("EHC_REDIS_URL", raising=False)
    monkeypatch.setattr("ehc.cli.server.get_settings", lambda: Settings(data_dir=tmp_path))
    refused = CliRunner().invoke(cli_app, ["serve", "--workers", "2"])
    assert refused.exit_code == 2 and "EHC_REDIS_URL" in refused.output


def test_a_wrong_redis_url_stops_the_process_at_start(platform):  # noqa: ANN001
    settings = dataclasses.replace(platform.settings, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(SystemExit, match="does not answer"):
        Platform(settings=settings, db=platform.db, keys=platform.keys, vault=platform.vault)
    production = dataclasses.replace(platform.settings, redis_url=REDIS_URL, environment="production")
    client = redis.Redis.from_url(REDIS_URL)
    if durability(client) is not None:  # a Redis that may lose claims is refused in production
        with pytest.raises(SystemExit, match="appendfsync always"):
            Platform(settings=production, db=platform.db, keys=platform.keys, vault=platform.vault)
    client.close()


# -- apps' keys cached in each process, and every change seen at the next request ------------------

@pytest.mark.parametrize("shared", [True, False], ids=["redis", "fallback"])
def test_a_key_change_made_by_another_process_is_seen_at_the_next_request(platform, shared_platform, institution,  # noqa: ANN001
                                                                          shared):
    """The server caches an app's key (no statement reads it once cached); a key added and a key revoked
    by another process (its own engine, as the CLI has) are seen by the server's very next request:
    through Redis's generation with ``EHC_REDIS_URL``, through the database's in the embedded fallback."""
    serving = shared_platform if shared else platform
    elsewhere = Platform(settings=serving.settings, db=Database(serving.settings.database_url), keys=serving.keys,
                         vault=serving.vault)
    his = hospital_system(elsewhere, institution)
    read_keys: list[str] = []

    def count_key_reads(conn, cursor, statement, *args):  # noqa: ANN001, ANN002, ARG001
        if "institution_apps" in statement:
            read_keys.append(statement)

    def ping(auth) -> dict:  # noqa: ANN001
        answer = client.get("/api/v1/apps/ping", headers=_signed(auth, "GET", "/api/v1/apps/ping"))
        return {"status": answer.status_code, **answer.json()}

    event.listen(serving.db.engine, "before_cursor_execute", count_key_reads)
    try:
        with TestClient(create_app(serving), raise_server_exceptions=False) as client:
            assert ping(his)["status"] == 200
            read_keys.clear()
            assert [ping(his)["status"] for _ in range(3)] == [200] * 3
            assert read_keys == []  # cached: the key is not read again

            new_key = SM2PrivateKey.generate()
            with elsewhere.db.session() as session:
                added = apps_service.add_key(elsewhere.ctx(session, Actor.system()), his.app_id,
                                             new_key.public_key.to_pem().decode())
            rotated = SM2Auth(his.app_id, added.key_id, new_key)
            assert ping(rotated)["status"] == 200  # a new key works at once
            assert ping(his)["status"] == 200  # and the old one until it is revoked

            with elsewhere.db.session() as session:
                apps_service.revoke_key(elsewhere.ctx(session, Actor.system()), his.app_id, his.key_id)
            refused = [ping(his) for _ in range(3)]
            assert [(r["status"], r["code"]) for r in refused] == [(401, "key_revoked")] * 3, refused
            assert ping(rotated)["status"] == 200
    finally:
        event.remove(serving.db.engine, "before_cursor_execute", count_key_reads)
        elsewhere.db.dispose()


def test_a_key_change_is_refused_when_redis_cannot_announce_it(platform, shared_platform, institution):  # noqa: ANN001
    """Without Redis the workers could not be told of a revocation: it is refused (503) and not made."""
    his = hospital_system(platform, institution)
    deaf = dataclasses.replace(shared_platform.settings, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(SharedStateUnavailable, match="nothing was changed"), platform.db.session() as session:
        apps_service.revoke_key(Ctx(session=session, vault=platform.vault, actor=Actor.system(), settings=deaf),
                                his.app_id, his.key_id)
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        assert [k.status for k in apps_service.keys_of(ctx, apps_service.get_app(ctx, his.app_id))] == ["active"]


def test_a_claim_reads_another_key_in_the_same_round_trip(redis_client, prefix):  # noqa: ANN001
    """The nonce claim's script also returns the generation of apps' keys; a Redis without one makes one
    from its clock, never a value it had before."""
    claims = SharedClaims(redis_client, prefix, "nonce", also_read="apps:keys")
    claimed, first, _ = claims.claim_reading("app:1", 60)
    assert claimed and first.startswith("redis-")
    assert claims.claim_reading("app:1", 60) == (False, first, 0)
    redis_client.set(prefix + "apps:keys", "replaced")
    assert claims.claim_reading("app:2", 60) == (True, "replaced", 0)
    redis_client.delete(prefix + "apps:keys")  # an emptied Redis
    time.sleep(0.001)
    assert claims.claim_reading("app:3", 60)[1] not in (first, "replaced")


def test_the_claim_spends_the_apps_allowance_in_the_same_round_trip(redis_client, prefix):  # noqa: ANN001
    """With Redis a signed request's nonce claim also spends its app's token, by the rate limit's own rule
    (the bucket a limiter checking alone would use); an empty bucket claims nothing and says when to
    come back."""
    limiter = SharedRateLimiter(redis_client, 8, prefix)  # bursts of 2
    claims = SharedClaims(redis_client, prefix, "nonce", also_read="apps:keys")
    bucket = limiter.bucket("app:1")
    assert claims.claim_reading("n1", 60, spending=bucket)[::2] == (True, 0)
    limiter.check("app:1")  # the second token of the burst, spent the other way: one bucket
    claimed, _, wait = claims.claim_reading("n2", 60, spending=bucket)
    assert not claimed and 0 < wait <= 8_000_000
    assert not redis_client.exists(prefix + "nonce:n2")  # refused: nothing claimed, so it may come back later
    with pytest.raises(RateLimited) as refused:
        limiter.refuse_if_waiting(wait)
    assert 1 <= refused.value.extra["retry_after"] <= 8
    assert claims.claim_reading("n3", 60, spending=limiter.bucket("app:2"))[::2] == (True, 0)  # another app's own
    assert SharedRateLimiter(redis_client, 0, prefix).bucket("app:1") is None  # a limit of 0 is off


def test_a_signed_request_makes_one_redis_round_trip(shared_platform, institution, monkeypatch):  # noqa: ANN001
    """The app's rate limit and its nonce are one script; over the allowance a signed call is 429, its
    nonce unspent."""
    settings = dataclasses.replace(shared_platform.settings, rate_limit_app=8)  # bursts of 2
    limited = Platform(settings=settings, db=shared_platform.db, keys=shared_platform.keys, vault=shared_platform.vault)
    assert limited.nonces.spends_app_rate
    his = hospital_system(limited, institution)
    calls = []
    real = limited.redis.execute_command
    monkeypatch.setattr(limited.redis, "execute_command", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        answers = []
        for _ in range(3):
            calls.clear()
            answers.append(client.get("/api/v1/apps/ping", headers=_signed(his, "GET", "/api/v1/apps/ping")))
            assert calls == ["EVALSHA"], calls
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[-1].json()["code"] == "rate_limited" and int(answers[-1].headers["Retry-After"]) >= 1
