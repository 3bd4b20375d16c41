"""Content digests: validation comes before any path is built from one."""

from __future__ import annotations

import hashlib
import re

from models.errors import InvalidDigest

__all__ = [
    "DIGEST_RE",
    "InvalidDigest",
    "blob_filename",
    "digest_hex",
    "parse_digest",
    "sha256_digest",
]

# Ollama's rule (CVE-2024-37032): exactly 64 lowercase hex digits, ':' or '-' separator.
# Always used with fullmatch: a bare `$` would also accept a trailing newline.
DIGEST_RE = re.compile(r"^sha256[:-][0-9a-f]{64}$")


def parse_digest(text: object) -> str:
    """Validate ``text`` and return the canonical ``sha256:<hex>`` form."""
    if not isinstance(text, str) or DIGEST_RE.fullmatch(text) is None:
        raise InvalidDigest("invalid digest format")
    return "sha256:" + text[7:]


def digest_hex(digest: str) -> str:
    """The 64 hex digits of a (validated) digest."""
    return parse_digest(digest)[7:]


def blob_filename(digest: str) -> str:
    """The file name of a blob on disk: ``sha256-<hex>``."""
    return "sha256-" + digest_hex(digest)


def sha256_digest(data: bytes) -> str:
    """The canonical digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
