"""Schemathesis over the platform's whole OpenAPI document, as every kind of caller.

Used by ``test_schemathesis.py`` (a bounded run in ``make test``) and by ``make fuzz`` (the same run,
longer: ``FUZZ_EXAMPLES``, ``FUZZ_STEPS``). The run is schemathesis's own engine, every phase: the
examples, the coverage phase (boundary and invalid values of every parameter), random fuzzing and the
stateful phase, which chains calls along the links it infers from the schemas (a card registered,
then read, reported lost, its family bound ...) so it reaches states that one call cannot.

Callers: anonymous, a signed-in resident, every staff role (a token in ``Authorization``) and a
hospital system, whose every request is signed (EHC-SM2-V1) after schemathesis has built it, the
way ``ehc.client.SM2Auth`` signs an httpx request. Operations that would end the caller's session
(a resident's sign-out) are left out for that caller, so the run keeps its identity to the end.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

import requests
import schemathesis
from schemathesis.engine import events

from ehc.apps import signing
from ehc.client import SM2Auth

# Checks whose failures the run must not have: the platform's answers as the document describes them.
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")


class SignedRequests(requests.auth.AuthBase):
    """EHC-SM2-V1 signing headers on a prepared ``requests`` request (what schemathesis sends)."""

    def __init__(self, auth: SM2Auth) -> None:
        self.auth = auth

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path, _, query = request.path_url.partition("?")
        body = request.body.encode() if isinstance(request.body, str) else request.body
        request.headers.update(signing.sign(self.auth.private_key, method=request.method, path=path, query=query,
                                            body=body, app_id=self.auth.app_id, key_id=self.auth.key_id))
        return request


_signer: SignedRequests | None = None  # the hospital system's signer while its run goes on


@schemathesis.hook
def before_call(context, case, kwargs):  # noqa: ANN001, ANN201
    if _signer is not None:
        kwargs["auth"] = _signer


@dataclass
class Outcome:
    caller: str
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    transitions: int = 0

    def summary(self) -> str:
        return (f"{self.caller}: {self.cases} cases, {self.refused} refused (4xx), {self.server_errors} server errors, "
                f"{len(self.failures)} failed checks, {len(self.errors)} engine errors, {self.transitions} stateful "
                f"links; statuses {dict(sorted(self.statuses.items()))}" + "".join(f"\n  {e}" for e in self.errors))

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def refused(self) -> int:
        return sum(n for status, n in self.statuses.items() if 400 <= status < 500)


PHASES = ("examples", "coverage", "fuzzing", "stateful")
# `make fuzz` (FUZZ_LONG=1): every phase, the coverage phase's boundary and invalid values of every
# parameter included; the bounded run in `make test` leaves that phase out (it is most of the time).
LONG = os.environ.get("FUZZ_LONG") == "1"
DEFAULT_PHASES = PHASES if LONG else ("examples", "fuzzing", "stateful")


def config_toml(base_url: str, headers: dict[str, str], values: dict[str, list[str]], examples: int, steps: int,
                seed: int | None, phases: tuple[str, ...]) -> str:
    """The run's configuration, in schemathesis's own format (what a schemathesis.toml would say)."""
    header_lines = "".join(f'{name} = "{value}"\n' for name, value in headers.items())
    # Ids that exist, tried in paths half of the time, so operations reach real cards, apps ...
    dictionaries = "".join(f"[dictionaries.{name}]\nvalues = {json.dumps(ids)}\n" for name, ids in values.items())
    bindings = "".join(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}\n' for name in values)
    return (
        f'base-url = "{base_url}"\n'
        + (f"seed = {seed}\n" if seed is not None else "")
        + "workers = 1\n"
        # An answer is judged on what it says, not how fast: a printed label (a PDF with a CJK font)
        # can take seconds on a loaded test machine, past schemathesis's default of 10 s.
        + "request-timeout = 60.0\n"
        + "[generation]\n"
        + f"max-examples = {examples}\n"
        + "[checks]\nenabled = false\n"
        + "".join(f"[checks.{name}]\nenabled = true\n" for name in CHECKS)
        + "".join(f"[phases.{name}]\nenabled = {'true' if name in phases else 'false'}\n"
                  for name in PHASES if name != "stateful")
        + f"[phases.stateful]\nenabled = {'true' if 'stateful' in phases else 'false'}\nmax-steps = {steps}\n"
        + f"[phases.stateful.generation]\nmax-examples = {max(5, examples * 5)}\n"
        + "[phases.stateful.inference]\nalgorithms = [\"location-headers\", \"dependency-analysis\"]\n"
        + ("[headers]\n" + header_lines if header_lines else "")
        + dictionaries
        + ("[parameters]\n" + bindings if bindings else "")
    )


def run(base_url: str, caller: str, *, headers: dict[str, str] | None = None, signer: SM2Auth | None = None,
        only: list[str] | None = None, exclude: list[str] = (), values: dict[str, list[str]] | None = None,
        examples: int | None = None, steps: int | None = None, phases: tuple[str, ...] | None = None) -> Outcome:
    """One schemathesis run as ``caller`` over the operations named in ``only`` (all by default) but those
    in ``exclude`` ("METHOD /path"); what it tried and what failed."""
    global _signer
    examples = examples or int(os.environ.get("FUZZ_EXAMPLES", "1"))
    steps = steps or int(os.environ.get("FUZZ_STEPS", "6"))
    seed = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None
    phases = phases or tuple(os.environ.get("FUZZ_PHASES", ",".join(DEFAULT_PHASES)).split(","))
    config = schemathesis.Config.from_str(config_toml(base_url, headers or {}, values or {}, examples, steps, seed,
                                                      phases))
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    if only is not None:
        schema = schema.include(name=list(only))
    if exclude:
        schema = schema.exclude(name=list(exclude))
    outcome = Outcome(caller)
    _signer = SignedRequests(signer) if signer is not None else None
    try:
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.PhaseStarted) and event.payload is not None:
                outcome.transitions = event.payload.transitions_selected
            elif isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
                _collect(outcome, event.recorder)
            elif isinstance(event, events.NonFatalError):
                outcome.errors.append(f"{event.label}: {event.info.format()[:400]}")
            elif isinstance(event, events.FatalError):
                outcome.errors.append(f"fatal: {event.exception!r}")
    finally:
        _signer = None
    return outcome


def _collect(outcome: Outcome, recorder) -> None:  # noqa: ANN001
    for case_id, interaction in recorder.interactions.items():
        outcome.cases += 1
        if interaction.response is not None:
            outcome.statuses[interaction.response.status_code] += 1
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.failure_info is not None:
                case = recorder.cases[case_id].value
                response = recorder.interactions.get(case_id)
                status = response.response.status_code if response and response.response else None
                outcome.failures.append(
                    f"[{outcome.caller}] {check.name}: {case.operation.label} -> {status}: "
                    f"{check.failure_info.failure.title} {str(check.failure_info.failure.message)[:300]}\n"
                    f"    {check.failure_info.code_sample[:600]}")
