"""The whole ASGI app driven in this process, for the profiles' ``http`` mode (``profile_lookup.py``,
``profile_register.py``): middleware, the caller's identification, FastAPI's validation and response
model, and httpx's own cost, without a server.

The sync dependencies and endpoints run inline instead of in worker threads, so that cProfile (this
thread only) sees them; the thread hand-offs of a real server are left out of the figures."""

from __future__ import annotations

import asyncio

import anyio.to_thread
import httpx


async def _inline(func, *args, **_):  # noqa: ANN001, ANN002, ANN003, ANN202
    return func(*args)


class InProcessApp:
    def __init__(self, platform) -> None:  # noqa: ANN001
        from ehc.app import create_app  # after the caller has set the environment up

        anyio.to_thread.run_sync = _inline
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(platform)),
                                         base_url="http://127.0.0.1")

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:  # noqa: ANN003
        return self._loop.run_until_complete(self._client.request(method, path, **kwargs))

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()
