"""Hostile input: schemathesis generates requests from /v1/openapi.json against a real Daphne.

No 5xx, responses conform to the schema (status codes, content types, bodies), malformed
requests are rejected, and authentication is enforced. `positive_data_acceptance` is left out on
purpose: schema-valid bodies can still be refused for business reasons the schema cannot express
(`runs.nothing_to_retry`, an unknown `persona_id`). `make soak` runs it with many more examples.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
    "ignored_auth", "unsupported_method",
])


def run_schemathesis(url: str, key: str, *, examples: int, workdir: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/v1/openapi.json",
               "-H", f"Authorization: Bearer {key}", "--checks", CHECKS, "--max-examples", str(examples),
               "--seed", "20261128", "--no-color", "--phases", "examples,coverage,fuzzing"]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SCHEMATHESIS_HOOKS": ""})


@pytest.mark.parametrize("examples", [pytest.param(8, id="quick"),
                                      pytest.param(200, id="long", marks=pytest.mark.soak)])
def test_the_api_survives_schema_driven_fuzzing(live_server, alice, transactional_db, tmp_path, examples):
    thread = alice.client.post("/v1/threads", {"title": "fuzz"}).json()
    alice.client.post(f"/v1/threads/{thread['id']}/messages", {"content": "hello"})
    result = run_schemathesis(live_server.url, alice.key, examples=examples, workdir=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "test cases:" in result.stdout.lower() and "generated" in result.stdout, result.stdout[-2000:]
