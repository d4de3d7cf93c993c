"""Rate limits per hospital app, per signed-in person and per anonymous address."""

from __future__ import annotations

import pytest

from ehc.kit.ratelimit import RateLimited, RateLimiter


def test_bucket_allows_a_burst_then_the_steady_rate():
    limiter = RateLimiter(per_minute=60)  # one a second, bursts of 15
    for _ in range(15):
        limiter.check("app:1", now=100.0)
    with pytest.raises(RateLimited) as refused:
        limiter.check("app:1", now=100.0)
    assert refused.value.status == 429 and refused.value.extra["retry_after"] == 1
    limiter.check("app:2", now=100.0)  # another caller has its own allowance
    limiter.check("app:1", now=101.0)  # a second later one more token has come back
    RateLimiter(per_minute=0).check("anything")  # 0 means off


def test_api_answers_429_with_retry_after_per_identity(client, platform, clerk):
    platform.limiters["identity"] = RateLimiter(per_minute=8)  # bursts of 2
    platform.limiters["anonymous"] = RateLimiter(per_minute=4)  # bursts of 1
    answers = [client.get("/api/v1/cards/" + "A" * 64, headers=clerk) for _ in range(3)]
    assert [a.status_code for a in answers] == [404, 404, 429]
    limited = answers[-1]
    assert limited.json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["content-type"].startswith("application/problem+json")
    # The limit is the clerk's own: an anonymous caller still has theirs.
    assert client.post("/api/v1/cards", json={"name": "x"}).status_code == 422
    assert client.post("/api/v1/cards", json={"name": "x"}).json()["code"] == "rate_limited"
