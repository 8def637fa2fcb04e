"""The README and docs/ stand on their own: no pointer outside the repository, links that resolve,
and an API reference (docs/api.md) that names every path of the served OpenAPI schema."""
from __future__ import annotations

import re

import pytest

from tests.servers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
API_PATH = re.compile(r"(/v1/[A-Za-z0-9_{}:./-]*[A-Za-z0-9_}])")


def normalized(path: str) -> str:
    """`/v1/threads/{thread_id}:retry` → `/v1/threads/{}:retry`: parameter names may differ."""
    return re.sub(r"\{[^}]*\}", "{}", path)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_never_send_the_reader_outside_the_repository(page):
    text = page.read_text()
    assert "../" not in text and "SPEC" not in text and "shared/" not in text, page
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        assert (page.parent / target.split("#")[0]).exists(), f"{page.name} links to {target}"


def test_api_reference_names_every_path_of_the_openapi_schema(client):
    schema = client.get("/v1/openapi.json").json()
    documented = {normalized(path) for path in API_PATH.findall((ROOT / "docs" / "api.md").read_text())}
    missing = sorted(path for path in schema["paths"] if normalized(path) not in documented)
    assert not missing, f"docs/api.md does not describe {missing}"
    # Served outside DRF, so not in the schema, and documented all the same.
    for path in ("/v1/runs/{}/events", "/v1/auth/token", "/v1/openapi.json"):
        assert path in documented


ERROR_CODE = re.compile(r"""(?:\bcode\s*=\s*|(?:ApiError|Conflict|TooManyRequests|Unprocessable|Forbidden|"""
                        r"""Unauthorized|NotFound)\(\s*)["']([a-z_]+\.[a-z_]+)["']""")


def test_api_reference_documents_every_error_code_the_code_raises():
    codes = set()
    for source in ROOT.glob("*/**/*.py"):
        if not {".venv", "tests", "benchmarks"} & set(source.parts):
            codes |= set(ERROR_CODE.findall(source.read_text()))
    assert {"runs.not_found", "auth.missing_token", "validation.error"} <= codes  # the scan finds them
    reference = (ROOT / "docs" / "api.md").read_text()
    missing = sorted(code for code in codes if f"`{code}`" not in reference)
    assert not missing, f"docs/api.md lacks {missing}"
