"""Running the sandbox insurer and bank for tests: real processes on their own data directories.

``Service("insurance", data_dir)`` / ``Service("bank", data_dir, "--callback-url", url)``: ``start()``
runs ``python -m ehc.cli sandbox ...`` on a free port and waits for ``/key``; ``client`` is an httpx
client that checks the SM2 signature of every answer that carries one (and insists on one for all but
the admin routes); ``fault()`` arms a fault; ``kill()`` is a ``kill -9``; ``stop()`` a clean stop.
``Receiver`` is a small HTTP server recording the bank's callbacks. Used by tests/test_sandboxes.py,
and meant for the payments tests too (docs/sandboxes.md).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from ehc.crypto import SM2PublicKey

SRC = Path(__file__).resolve().parents[1] / "src"
START_TIMEOUT = 90.0  # the CLI imports the whole platform before serving: seconds on a busy machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """One sandbox process; ``client`` checks the signature of every answer that carries one, and
    insists on it for everything but the admin routes."""

    def __init__(self, kind: str, data: Path, *extra: str, port: int | None = None) -> None:
        self.kind, self.data, self.extra = kind, data, extra
        self.proc: subprocess.Popen | None = None
        self.signed = 0
        # One port for the service's life: a restart after a kill -9 answers where callers expect it.
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
        self.data.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.data.parent / f"{self.data.name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ehc.cli", "sandbox", self.kind, "--port", str(self.port), "--data",
             str(self.data), *self.extra], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, f"{self.kind} sandbox exited: see {self.log.name}"
            try:
                answer = httpx.get(self.url + "/key", timeout=1.0)
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{self.kind} sandbox did not start"
            time.sleep(0.1)
        self.public_key = SM2PublicKey.from_pem(answer.json()["public_key_pem"])
        assert self.verifies(answer.content, answer.headers["X-Signature"])
        self.client = httpx.Client(base_url=self.url, timeout=10.0, event_hooks={"response": [self._check]})

    def verifies(self, body: bytes, signature: str) -> bool:
        return self.public_key.verify(base64.b64decode(signature), body)

    def _check(self, response: httpx.Response) -> None:
        response.read()
        signature = response.headers.get("X-Signature")
        if signature is None:
            assert response.request.url.path.startswith("/admin/"), f"unsigned answer from {response.request.url}"
            assert response.is_success
            return
        assert self.verifies(response.content, signature), f"bad signature from {response.request.url}"
        self.signed += 1

    def kill(self) -> None:
        """``kill -9``: no goodbye, no flush."""
        self.client.close()
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

    # conveniences
    def get(self, path: str, **kw) -> httpx.Response:  # noqa: ANN003
        return self.client.get(path, **kw)

    def post(self, path: str, body: dict | None = None, **kw) -> httpx.Response:  # noqa: ANN003
        return self.client.post(path, json=body, **kw)

    def fault(self, operation: str, fault: str, times: int = 1, delay: float = 0.5) -> None:
        answer = self.post("/admin/faults", {"operation": operation, "fault": fault, "times": times, "delay": delay})
        assert answer.status_code == 200, answer.text


class Receiver:
    """A tiny HTTP server that records the callbacks it gets."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.cond:
                    receiver.calls.append({"path": self.path, "body": body, "at": time.monotonic(),
                                           "signature": self.headers.get("X-Signature")})
                    receiver.cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_id(self, key: str, value: str) -> list[dict]:
        with self.cond:
            return [c for c in self.calls if json.loads(c["body"]).get(key) == value]

    def wait(self, key: str, value: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(found := [c for c in self.calls if json.loads(c["body"]).get(key) == value]) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{count} callback(s) for {value} expected, got {len(found)}"
                self.cond.wait(left)
            return found
