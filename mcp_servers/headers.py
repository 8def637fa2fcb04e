"""The HTTP headers sent to an MCP server (an API key, a bearer token): checked, sealed, opened.

Values are secrets: they are stored as one Fernet token (personas.credentials, the key that also
protects route credentials) and only `headers_open` turns them back into text — for the HTTP
client, nothing else. The API and the admin show the names only.
"""
from __future__ import annotations

import json
import re

from personas.credentials import CredentialsUnreadable, decrypt_secret, encrypt_secret

MAX_HEADERS = 32
MAX_NAME_LENGTH = 100
MAX_VALUE_LENGTH = 8192
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # an HTTP field name (RFC 9110 token)
_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")                # visible ASCII, spaces and tabs: no CR, LF or NUL
# Set by the MCP transport itself (or by HTTP): a user's value would break the session.
RESERVED = frozenset({"host", "content-length", "content-type", "accept", "connection", "transfer-encoding",
                      "te", "trailer", "upgrade", "keep-alive", "proxy-connection", "mcp-session-id",
                      "mcp-protocol-version", "last-event-id"})


class HeadersUnreadable(Exception):
    """The stored values cannot be decrypted with the configured key (it was rotated away)."""


def headers_check(headers: object) -> list[str]:
    """What is wrong with `headers` (a JSON object of header name → value); empty when it may be stored."""
    if not isinstance(headers, dict):
        return ["must be an object of header names to values"]
    if len(headers) > MAX_HEADERS:
        return [f"at most {MAX_HEADERS} headers"]
    problems, seen = [], set()
    for name, value in headers.items():
        shown = name[:MAX_NAME_LENGTH]
        if len(name) > MAX_NAME_LENGTH or not _TOKEN.match(name):
            problems.append(f"{shown!r} is not a valid header name")
        elif name.lower() in RESERVED:
            problems.append(f"{shown!r} is set by the MCP transport and may not be given")
        elif name.lower() in seen:
            problems.append(f"{shown!r} is given twice")
        elif not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH or not _VALUE.match(value):
            problems.append(f"the value of {shown!r} must be visible ASCII text of at most {MAX_VALUE_LENGTH} "
                            "characters")
        seen.add(name.lower())
    return problems


def headers_seal(headers: dict[str, str]) -> tuple[list[str], str]:
    """(the names, the encrypted values) to store; no headers → ([], "")."""
    if not headers:
        return [], ""
    return list(headers), encrypt_secret(json.dumps(headers))


def headers_open(token: str) -> dict[str, str]:
    """The stored headers in plaintext, for the HTTP client only. Raises HeadersUnreadable."""
    if not token:
        return {}
    try:
        return json.loads(decrypt_secret(token))
    except CredentialsUnreadable:
        raise HeadersUnreadable("the stored headers cannot be decrypted with ARKLOOP_ENCRYPTION_KEY") from None
