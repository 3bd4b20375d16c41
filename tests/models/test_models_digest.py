from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from models.digest import DIGEST_RE, InvalidDigest, blob_filename, parse_digest, sha256_digest
from models.store import ModelStore

HEX = "ab" * 32


def test_canonical_form() -> None:
    assert parse_digest(f"sha256:{HEX}") == f"sha256:{HEX}"
    assert parse_digest(f"sha256-{HEX}") == f"sha256:{HEX}"
    assert blob_filename(f"sha256:{HEX}") == f"sha256-{HEX}"
    assert DIGEST_RE.pattern == "^sha256[:-][0-9a-f]{64}$"
    assert sha256_digest(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize(
    "text",
    [
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "sha256:../../x",
        "sha256:../../" + "a" * 58,
        "sha512:" + "a" * 64,
        "sha256_" + "a" * 64,
        "a" * 64,
        f"sha256:{HEX}\n",
        f" sha256:{HEX}",
        f"sha256:{HEX}/x",
        "",
        None,
        b"sha256:" + b"a" * 64,
    ],
)
def test_invalid_digests(text: object) -> None:
    with pytest.raises(InvalidDigest, match="invalid digest format"):
        parse_digest(text)


def test_store_validates_before_building_a_path(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    for bad in ("sha256:../../etc/passwd", "sha256:" + "a" * 63, "../../x"):
        with pytest.raises(InvalidDigest):
            store.blob_path(bad)
        with pytest.raises(InvalidDigest):
            store.has_blob(bad)
        with pytest.raises(InvalidDigest):
            store.add_blob_stream(bad, [b"x"])
    assert list(tmp_path.iterdir()) == []
