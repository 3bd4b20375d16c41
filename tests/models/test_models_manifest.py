from __future__ import annotations

import json

import pytest

from models.errors import InvalidManifest
from models.manifest import (
    MEDIA_CONFIG,
    MEDIA_MODEL,
    Manifest,
    ModelConfig,
    parse_manifest,
)

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64

# As Ollama writes it (manifest.WriteManifest), with a pulled layer's optional fields.
OLLAMA = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": MEDIA_CONFIG, "digest": A, "size": 561},
    "layers": [
        {"mediaType": MEDIA_MODEL, "digest": B, "size": 2019377376, "from": "/x", "name": "m"},
        {"mediaType": "application/vnd.ollama.image.template", "digest": A, "size": 1429},
    ],
    "annotations": {"unknown": "ignored"},
}


def test_parses_ollama_manifest_and_serialises_in_go_order() -> None:
    manifest = parse_manifest(json.dumps(OLLAMA).encode())
    assert manifest.layers[0].from_ == "/x"
    assert manifest.total_size == 561 + 2019377376 + 1429
    assert manifest.digests == [A, B, A]
    assert [layer.size for layer in manifest.layers_of(MEDIA_MODEL)] == [2019377376]
    raw = manifest.to_json()
    assert raw.startswith(b'{"schemaVersion":2,"mediaType":')
    assert b"annotations" not in raw
    assert b'"from":"/x","name":"m"' in raw
    assert b'"from"' not in raw.split(b"},{")[-1]  # omitted when empty, like Go's omitempty
    assert parse_manifest(raw) == manifest


def test_dash_digests_are_canonicalised() -> None:
    data = json.loads(json.dumps(OLLAMA))
    data["layers"][0]["digest"] = "sha256-" + "b" * 64
    assert parse_manifest(json.dumps(data).encode()).layers[0].digest == B


def _with(path: list[object], value: object) -> bytes:
    data = json.loads(json.dumps(OLLAMA))
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"{not json",
        _with(["schemaVersion"], 1),
        _with(["schemaVersion"], "2"),
        _with(["mediaType"], "text/plain"),
        _with(["config"], KeyError),
        _with(["layers"], []),
        _with(["layers"], KeyError),
        _with(["layers", 0, "digest"], "sha256:../../x"),
        _with(["layers", 0, "digest"], "sha256:" + "A" * 64),
        _with(["config", "digest"], "sha256:" + "a" * 63),
        _with(["layers", 0, "size"], -1),
        _with(["layers", 0, "size"], "12"),
        _with(["layers", 0, "size"], 1.5),
        _with(["layers", 0, "size"], True),
        _with(["layers", 0, "size"], (1 << 40) + 1),
        _with(["layers", 0, "mediaType"], ""),
        _with(["layers"], [OLLAMA["layers"][1]] * 1025),  # type: ignore[index]
    ],
)
def test_invalid_manifests(raw: bytes) -> None:
    with pytest.raises(InvalidManifest):
        parse_manifest(raw)


def test_huge_manifest_refused_before_parsing() -> None:
    with pytest.raises(InvalidManifest, match="too large"):
        parse_manifest(b" " * (4 << 20) + b"{}")


def test_model_config_keeps_unknown_fields() -> None:
    raw = (
        b'{"model_format":"gguf","model_family":"llama","model_families":["llama"],'
        b'"model_type":"3.2B","file_type":"Q4_K_M","architecture":"amd64","os":"linux",'
        b'"rootfs":{"type":"layers","diff_ids":["sha256:x"]},"future_field":{"a":1}}'
    )
    config = ModelConfig.from_json(raw)
    assert config.model_type == "3.2B"
    assert config.rootfs is not None and config.rootfs.diff_ids == ["sha256:x"]
    assert json.loads(config.to_json())["future_field"] == {"a": 1}
    assert ModelConfig.from_json(config.to_json()) == config
    for bad in (b"[]", b"nope", b'{"model_families": "llama"}'):
        with pytest.raises(InvalidManifest):
            ModelConfig.from_json(bad)


def test_manifest_is_immutable() -> None:
    manifest = parse_manifest(json.dumps(OLLAMA).encode())
    with pytest.raises(ValueError, match="frozen"):
        manifest.layers[0].size = 1
    assert isinstance(manifest, Manifest)
