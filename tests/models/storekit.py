"""Helpers that write a store by hand, byte for byte in Ollama's layout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from models.manifest import MEDIA_CONFIG


def snapshot(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its size."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def put_blob(root: Path, data: bytes) -> dict[str, object]:
    """Write ``blobs/sha256-<hex>`` by hand; return the manifest layer fields."""
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / f"sha256-{digest}").write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def put_manifest(
    root: Path,
    parts: tuple[str, str, str, str],
    layers: list[tuple[str, bytes]],
    config: bytes = b'{"model_format":"gguf","model_family":"llama","file_type":"Q4_0"}',
    *,
    indent: int | None = None,
) -> bytes:
    """Write blobs for ``layers`` and a manifest at ``manifests/<parts>``; return its bytes."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": MEDIA_CONFIG, **put_blob(root, config)},
        "layers": [{"mediaType": media, **put_blob(root, data)} for media, data in layers],
    }
    raw = json.dumps(manifest, indent=indent).encode()
    path = root.joinpath("manifests", *parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return raw
