"""What an integrator and a newcomer meet first (issue 10, items 1-3): ``/docs`` works with no internet,
the OpenAPI document is valid and true to the answers (a generated client performs a signed lookup and
reads a problem), and a browser gets HTML error pages while the API keeps problem+json."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
from factories import ARTIFACTS, HOLDER_PERSON, hospital_system, live, make_institution
from openapi_spec_validator import validate
from residents import resident_id

from ehc.app import create_app

VENV_BIN = Path(sys.executable).parent


def _document(client) -> dict:  # noqa: ANN001
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()


def test_the_openapi_document_is_valid_and_declares_what_the_server_answers(client) -> None:  # noqa: ANN001
    document = _document(client)
    validate(document)  # openapi-spec-validator: a valid OpenAPI 3.1 document
    operations = [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    ping = document["paths"]["/api/v1/apps/ping"]
    assert ping["get"]["operationId"] != ping["post"]["operationId"]
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    titles = [schema.get("title", name) for name, schema in schemas.items()]
    assert len(titles) == len(set(titles)), "schema titles must be unique (generators name classes by title)"
    assert {"CardsDocumentIn", "MpiDocumentIn", "CardsMergeIn", "MpiMergeIn"} <= schemas.keys()
    for path, method, op in operations:
        for status in ("400", "401", "403", "404", "409", "422", "429"):
            content = op["responses"][status]["content"]
            if path.startswith("/fhir"):  # the FHIR door refuses with OperationOutcomes, as FHIR clients expect
                assert "application/fhir+json" in content, (path, method, status)
                continue
            assert content == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}, \
                (path, method, status)
        assert op["security"], (path, method)
    assert {"bearerToken", "sm2Signature"} <= document["components"]["securitySchemes"].keys()
    match = document["paths"]["/api/v1/mpi/match"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert match["$ref"].startswith("#/components/schemas/")


def test_a_generated_client_performs_a_signed_lookup_and_reads_a_problem(platform, tmp_path: Path) -> None:  # noqa: ANN001
    institution = make_institution(platform, "inst-gen-01", uscc="12510000MB1234567X", name="Generated Client Hospital",
                                   kind="hospital", region_code="510104", level="3A")
    auth = hospital_system(platform, institution)
    with live(create_app(platform)) as url:
        (tmp_path / "openapi.json").write_text(httpx.get(f"{url}/openapi.json").text)
        (tmp_path / "config.yaml").write_text(
            "project_name_override: ehc_generated\npackage_name_override: ehc_generated\npost_hooks: []\n"
            "content_type_overrides:\n  image/png: application/octet-stream\n  image/svg+xml: application/octet-stream\n"
            "  application/pdf: application/octet-stream\n  application/vnd.apache.parquet: application/octet-stream\n"
            "  application/fhir+json: application/json\n")
        run = subprocess.run([str(VENV_BIN / "openapi-python-client"), "generate", "--path", "openapi.json", "--meta",
                              "none", "--config", "config.yaml"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "WARNING" not in run.stdout + run.stderr, run.stdout
        sys.path.insert(0, str(tmp_path))
        try:
            generated = importlib.import_module("ehc_generated")
            lookup = importlib.import_module("ehc_generated.api.cards.lookup_api_v1_cards_lookup_post")
            register = importlib.import_module("ehc_generated.api.cards.register_api_v1_cards_post")
            models = importlib.import_module("ehc_generated.models")
            client = generated.Client(base_url=url, httpx_args={"auth": auth}, raise_on_unexpected_status=True)
            with client as client:
                made = register.sync_detailed(client=client, body=models.RegistrationIn.from_dict(HOLDER_PERSON))
                assert made.status_code == 201, made.content
                card = lookup.sync(client=client, body=models.LookupIn.from_dict({"document": HOLDER_PERSON["document"]}))
                assert isinstance(card, models.CardOut) and card.ehc_id == made.parsed.ehc_id
                missing = lookup.sync(client=client, body=models.LookupIn.from_dict(
                    {"document": {"type": "01", "number": resident_id(born=date(1990, 1, 2), sequence=77)}}))
                assert isinstance(missing, models.Problem) and missing.code == "card_not_found"
                bad = lookup.sync(client=client, body=models.LookupIn.from_dict(
                    {"document": {"type": "01", "number": "12345"}}))
                assert isinstance(bad, models.Problem) and bad.status == 422 and bad.code
        finally:
            sys.path.remove(str(tmp_path))
            for name in [m for m in sys.modules if m == "ehc_generated" or m.startswith("ehc_generated.")]:
                del sys.modules[name]


def test_docs_use_only_the_platforms_own_files(client) -> None:  # noqa: ANN001
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 10_000, asset


def test_docs_render_in_chromium_with_no_internet(live_server: str, chromium) -> None:  # noqa: ANN001
    page = chromium.new_page()
    outside: list[str] = []

    def only_local(route) -> None:  # noqa: ANN001
        if route.request.url.startswith(live_server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{live_server}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() > 50
    assert page.get_by_text("/api/v1/cards/lookup").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs-offline.png"))
    assert not outside, outside


def test_browsers_get_error_pages_in_their_language_and_the_api_keeps_problems(client) -> None:  # noqa: ANN001
    html = {"Accept": "text/html,application/xhtml+xml"}
    zh = client.get("/no-such-page", headers={**html, "Accept-Language": "zh-CN"})
    assert zh.status_code == 404 and zh.headers["content-type"].startswith("text/html")
    assert "页面不存在" in zh.text and "<html" in zh.text
    en = client.get("/no-such-page?lang=en", headers=html)
    assert en.status_code == 404 and "Not found" in en.text
    wrong_method = client.delete("/apply?lang=en", headers=html)
    assert wrong_method.status_code == 405 and "text/html" in wrong_method.headers["content-type"]
    assert "GET" in wrong_method.headers.get("allow", "")
    for path in ("/api/v1/nothing-here", "/fhir/nothing-here", "/.well-known/ehc/nothing"):
        api = client.get(path, headers=html)
        # A machine's answer, never a page (FHIR: an OperationOutcome; an unknown FHIR type asks for a caller first).
        assert api.status_code in (401, 404) and "text/html" not in api.headers["content-type"], path
    machine = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert machine.status_code == 404 and json.loads(machine.text)["code"] == "not_found"


def test_the_guides_query_canonicaliser_agrees_with_the_platform() -> None:
    """docs/api-integration.md's Python canonicaliser for signed FHIR searches, run as written."""
    from ehc.apps import signing

    guide = (Path(__file__).resolve().parents[1] / "docs" / "api-integration.md").read_text()
    block = re.search(r"```python\n(from urllib.parse import parse_qsl, quote\n.*?)```", guide, re.S).group(1)
    namespace: dict = {}
    exec(compile(block.split("\ncanonical_query(")[0], "api-integration.md", "exec"), namespace)  # noqa: S102
    for query in ("identifier=urn:oid:2.16.156.10011.1.1|110105194912310029&family:exact=张",
                  "b=2&a=%e5%bc%a0&a=1+1", "_count=0&address-city=成都"):
        assert namespace["canonical_query"](query) == signing.canonical_query(query), query
    assert "family%3Aexact=%E5%BC%A0&identifier=urn%3Aoid%3A2.16.156.10011.1.1%7C110105194912310029" in guide
