from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.errors import (
    BlobNotFound,
    BlobTooLarge,
    DigestMismatch,
    InvalidManifest,
    InvalidModelName,
    ModelNotFound,
    StoreError,
)
from models.manifest import (
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
    ModelConfig,
)
from models.names import ModelName
from models.store import ModelStore
from tests.models.storekit import put_blob, put_manifest, snapshot

GGUF = b"GGUF fake weights"
CONFIG = ModelConfig(model_format="gguf", model_family="llama", file_type="Q4_0")


def ollama_store(root: Path) -> bytes:
    """A store as Ollama itself lays it out (pretty-printed manifest, like a pull keeps it)."""
    return put_manifest(
        root,
        ("registry.ollama.ai", "library", "tiny", "latest"),
        [
            (MEDIA_MODEL, GGUF),
            (MEDIA_PROJECTOR, b"GGUF projector"),
            (MEDIA_TEMPLATE, b"{{ .Prompt }}"),
            (MEDIA_SYSTEM, b"Be brief."),
            (MEDIA_LICENSE, b"MIT"),
            (MEDIA_PARAMS, b'{"stop":["<|end|>"],"temperature":0.6}'),
            (MEDIA_MESSAGES, b'[{"role":"user","content":"hi"}]'),
        ],
        indent=2,
    )


def test_reads_a_store_written_in_ollamas_layout(tmp_path: Path) -> None:
    raw = ollama_store(tmp_path)
    store = ModelStore(tmp_path)
    (entry,) = store.list_models()
    assert str(entry.name) == "tiny:latest"
    assert entry.digest == hashlib.sha256(raw).hexdigest()
    assert (
        entry.size
        == sum(layer.size for layer in entry.manifest.layers) + entry.manifest.config.size
    )
    manifest_file = tmp_path / "manifests/registry.ollama.ai/library/tiny/latest"
    assert entry.modified_at == datetime.fromtimestamp(manifest_file.stat().st_mtime, UTC)
    assert entry.modified_at.tzinfo is not None
    assert entry.config.model_family == "llama"

    model = store.resolve("tiny")
    assert model.model_path == tmp_path / "blobs" / f"sha256-{hashlib.sha256(GGUF).hexdigest()}"
    assert model.model_path.read_bytes() == GGUF
    assert (
        model.projector_path is not None and model.projector_path.read_bytes() == b"GGUF projector"
    )
    assert model.template == "{{ .Prompt }}"
    assert model.system == "Be brief."
    assert model.license == ["MIT"]
    assert model.params == {"stop": ["<|end|>"], "temperature": 0.6}
    assert model.messages == [{"role": "user", "content": "hi"}]
    assert model.config.file_type == "Q4_0"
    assert model.digest == entry.digest == store.manifest_digest("tiny:latest")
    assert store.read_manifest("tiny") == entry.manifest


def test_lookup_is_case_insensitive(tmp_path: Path) -> None:
    put_manifest(
        tmp_path, ("registry.ollama.ai", "library", "SmolLM2", "135M"), [(MEDIA_MODEL, GGUF)]
    )
    store = ModelStore(tmp_path)
    model = store.resolve("smollm2:135m")
    assert model.name == ModelName("registry.ollama.ai", "library", "SmolLM2", "135M")
    assert store.exists("SMOLLM2:135m")
    assert store.find("smollm2:135m") == model.name
    # writing under another case reuses the existing path instead of making a twin
    store.copy("smollm2:135m", "SMOLLM2:135M")
    assert [str(e.name) for e in store.list_models()] == ["SmolLM2:135M"]


def test_missing_model_message_uses_the_name_as_given(store: ModelStore) -> None:
    for call in (store.resolve, store.delete, store.read_manifest):
        with pytest.raises(ModelNotFound, match=r"^model 'nope' not found$"):
            call("nope")
    with pytest.raises(ModelNotFound, match="model 'nope:latest' not found"):
        store.resolve(ModelName.parse("nope"))
    with pytest.raises(InvalidModelName):
        store.resolve("../etc/passwd")


def test_create_copy_delete_with_blob_gc(store: ModelStore) -> None:
    weights = store.add_blob_bytes(GGUF)
    store.create_model(
        "a", model_blob=weights, system="only a", params={"num_ctx": 64}, config=CONFIG
    )
    store.create_model("b", model_blob=weights, system="only b", license=["MIT"], config=CONFIG)
    store.copy("a", "ns/c:v1")
    assert sorted(str(e.name) for e in store.list_models()) == ["a:latest", "b:latest", "ns/c:v1"]
    assert store.resolve("ns/c:v1").digest == store.resolve("a").digest
    only_a = store.read_manifest("a").layers_of(MEDIA_SYSTEM)[0].digest

    store.delete("a")  # ns/c still references a's layers
    assert store.has_blob(only_a) and store.has_blob(weights)
    store.delete("ns/c:v1")
    assert not store.has_blob(only_a)
    assert store.has_blob(weights)  # shared with b
    assert not (store.manifests_dir / "registry.ollama.ai" / "ns").exists()  # empty dirs removed
    store.delete("b")
    assert store.list_models() == []
    assert list(store.blobs_dir.iterdir()) == []
    assert not (store.manifests_dir / "registry.ollama.ai").exists()


def test_create_writes_ollama_layers(store: ModelStore) -> None:
    weights = store.add_blob_bytes(GGUF)
    manifest = store.create_model(
        "m",
        model_blob=weights,
        template="{{ .Prompt }}",
        system="sys",
        params={"stop": ["<|im_end|>"], "temperature": 0.5},
        license=["L1", "L2"],
        messages=[{"role": "user", "content": "hi"}],
        config=CONFIG,
    )
    assert [layer.media_type for layer in manifest.layers] == [
        MEDIA_MODEL,
        MEDIA_TEMPLATE,
        MEDIA_SYSTEM,
        MEDIA_LICENSE,
        MEDIA_LICENSE,
        MEDIA_PARAMS,
        MEDIA_MESSAGES,
    ]
    params = store.read_blob(manifest.layers_of(MEDIA_PARAMS)[0].digest)
    assert params == b'{"stop":["<|im_end|>"],"temperature":0.5}'
    raw = (store.manifests_dir / "registry.ollama.ai/library/m/latest").read_bytes()
    assert json.loads(raw)["schemaVersion"] == 2
    assert raw.startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.docker')
    assert ModelConfig.from_json(store.read_blob(manifest.config.digest)) == CONFIG


def test_write_manifest_requires_every_blob(store: ModelStore) -> None:
    weights = store.add_blob_bytes(GGUF)
    missing = "sha256:" + "0" * 64
    manifest = Manifest(
        config=Layer(
            mediaType="application/vnd.docker.container.image.v1+json", digest=missing, size=2
        ),
        layers=[Layer(mediaType=MEDIA_MODEL, digest=weights, size=len(GGUF))],
    )
    with pytest.raises(BlobNotFound, match=missing):
        store.write_manifest("m", manifest)
    wrong_size = manifest.model_copy(
        update={"config": Layer(mediaType="x", digest=weights, size=1)}
    )
    with pytest.raises(InvalidManifest, match="size"):
        store.write_manifest("m", wrong_size)
    assert store.list_models() == []


def test_write_manifest_bytes_keeps_bytes_and_digest(tmp_path: Path) -> None:
    raw = ollama_store(tmp_path / "src")
    store = ModelStore(tmp_path / "dst")
    for blob in (tmp_path / "src/blobs").iterdir():
        store.add_blob_file(blob)
    store.write_manifest_bytes("pulled:1", raw)
    assert store.manifest_digest("pulled:1") == hashlib.sha256(raw).hexdigest()
    assert store.read_manifest_bytes("pulled:1") == raw


def test_digest_mismatch_leaves_nothing_behind(store: ModelStore) -> None:
    good = store.add_blob_bytes(b"keep")
    before = snapshot(store.root)
    expected = "sha256:" + hashlib.sha256(b"expected").hexdigest()
    got = "sha256:" + hashlib.sha256(b"actual").hexdigest()
    with pytest.raises(DigestMismatch) as info:
        store.add_blob_stream(expected, [b"act", b"ual"])
    assert str(info.value) == f'digest mismatch, expected "{expected}", got "{got}"'
    with pytest.raises(BlobTooLarge):
        store.add_blob_stream(expected, [b"expec", b"ted"], max_bytes=4)
    assert snapshot(store.root) == before
    assert store.has_blob(good) and not store.has_blob(expected)
    assert store.add_blob_stream(expected, iter([b"expec", b"ted"])) == expected


def test_add_blob_file_copies_and_can_hard_link(store: ModelStore, tmp_path: Path) -> None:
    src = tmp_path / "weights.gguf"
    src.write_bytes(GGUF * 1000)
    digest = store.add_blob_file(src)
    assert digest == "sha256:" + hashlib.sha256(GGUF * 1000).hexdigest()
    assert store.blob_path(digest).stat().st_ino != src.stat().st_ino
    store.blob_path(digest).unlink()
    assert store.add_blob_file(src, link=True) == digest
    assert store.blob_path(digest).stat().st_ino == src.stat().st_ino  # same filesystem here
    assert store.blob_path(digest).read_bytes() == GGUF * 1000


def test_add_blob_file_refuses_non_regular_files(store: ModelStore, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        store.add_blob_file(fifo)
    with pytest.raises(OSError):
        store.add_blob_file(tmp_path)


def test_corrupt_or_oversized_layers_are_refused(tmp_path: Path) -> None:
    put_manifest(
        tmp_path,
        ("registry.ollama.ai", "library", "big", "latest"),
        [
            (MEDIA_MODEL, GGUF),
            (MEDIA_TEMPLATE, b"x" * ((1 << 20) + 1)),
        ],
    )
    put_manifest(
        tmp_path,
        ("registry.ollama.ai", "library", "bad", "latest"),
        [
            (MEDIA_MODEL, GGUF),
            (MEDIA_SYSTEM, b"original"),
        ],
    )
    store = ModelStore(tmp_path)
    with pytest.raises(BlobTooLarge):
        store.resolve("big")
    system = store.read_manifest("bad").layers_of(MEDIA_SYSTEM)[0].digest
    store.blob_path(system).write_bytes(b"tampered")
    with pytest.raises(DigestMismatch):
        store.resolve("bad")
    store.blob_path(system).unlink()
    with pytest.raises(BlobNotFound):
        store.resolve("bad")


def test_list_skips_invalid_manifests(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ollama_store(tmp_path)
    bad_json = tmp_path / "manifests/registry.ollama.ai/library/broken/latest"
    bad_json.parent.mkdir(parents=True)
    bad_json.write_text("{not json")
    bad_name = tmp_path / "manifests/registry.ollama.ai/library/-dash/latest"
    bad_name.parent.mkdir(parents=True)
    bad_name.write_bytes(
        (tmp_path / "manifests/registry.ollama.ai/library/tiny/latest").read_bytes()
    )
    traversal = tmp_path / "manifests/registry.ollama.ai/library/evil/latest"
    traversal.parent.mkdir(parents=True)
    traversal.write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "x", "digest": "sha256:../../../etc/passwd", "size": 1},
                "layers": [{"mediaType": MEDIA_MODEL, "digest": "sha256:" + "a" * 64, "size": 1}],
            }
        )
    )
    store = ModelStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="models.store"):
        assert [str(e.name) for e in store.list_models()] == ["tiny:latest"]
    assert "broken" in caplog.text and "evil" in caplog.text
    with pytest.raises(InvalidManifest, match="invalid digest format"):
        store.resolve("evil")


def test_prune(tmp_path: Path) -> None:
    ollama_store(tmp_path)
    corrupt = tmp_path / "manifests/registry.ollama.ai/library/corrupt/latest"
    corrupt.parent.mkdir(parents=True)
    kept = put_blob(tmp_path, b"referenced by a manifest we cannot parse")["digest"]
    corrupt.write_text(f'{{"schemaVersion": 2, "layers": [{{"digest": "{kept}"')
    orphan = put_blob(tmp_path, b"orphan")["digest"]
    stale = tmp_path / "blobs/.tmp-stale"
    stale.write_bytes(b"x")
    os.utime(stale, (0, 0))
    fresh = tmp_path / "blobs/.tmp-fresh"
    fresh.write_bytes(b"x")
    (tmp_path / "manifests/empty/dirs").mkdir(parents=True)
    store = ModelStore(tmp_path)
    assert store.prune() == 1
    assert not store.has_blob(str(orphan))
    assert store.has_blob(str(kept))
    assert not stale.exists() and fresh.exists()
    assert not (tmp_path / "manifests/empty").exists()
    assert store.resolve("tiny").model_path.is_file()
    assert store.prune() == 0


def test_nothing_is_written_outside_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    store = ModelStore(tmp_path / "store")
    weights = store.add_blob_bytes(GGUF)
    for name in ("../x", "../../x:latest", "/abs", "a/../../b", "x/y/z/w"):
        with pytest.raises(InvalidModelName):
            store.create_model(name, model_blob=weights, config=CONFIG)
        with pytest.raises(InvalidModelName):
            store.copy(name, "ok")
    store.create_model("ok", model_blob=weights, config=CONFIG)
    store.copy("ok", "ok2")
    store.delete("ok2")
    store.prune()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.txt", "store"]
    assert outside.read_text() == "untouched"
    assert all(p.resolve().is_relative_to(store.root) for p in store.root.rglob("*"))


def test_concurrent_creates_and_deletes_stay_consistent(store: ModelStore) -> None:
    weights = store.add_blob_bytes(GGUF)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(5):
                name = f"w{i}:{j}"
                store.create_model(name, model_blob=weights, system="shared", config=CONFIG)
                if j % 2:
                    store.delete(name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = store.list_models()
    assert len(entries) == 4 * 3
    for entry in entries:
        for digest in entry.manifest.digests:
            assert store.has_blob(digest)
    assert not list(store.root.rglob(".tmp-*"))


@pytest.mark.parametrize(
    ("layers", "error"),
    [
        ([(MEDIA_SYSTEM, b"no model layer")], "no GGUF model layer"),
        ([(MEDIA_MODEL, GGUF), (MEDIA_PARAMS, b"[1, 2]")], "not a JSON object"),
        ([(MEDIA_MODEL, GGUF), (MEDIA_PARAMS, b"{bad")], "not valid JSON"),
        ([(MEDIA_MODEL, GGUF), (MEDIA_MESSAGES, b'[{"role": 1}]')], "role, content"),
        ([(MEDIA_MODEL, GGUF), (MEDIA_MESSAGES, b"nope")], "not valid JSON"),
        ([(MEDIA_MODEL, GGUF), (MEDIA_TEMPLATE, b"\xff\xfe")], "not valid UTF-8"),
    ],
)
def test_invalid_layers_are_reported(
    tmp_path: Path, layers: list[tuple[str, bytes]], error: str
) -> None:
    put_manifest(tmp_path, ("registry.ollama.ai", "library", "m", "latest"), layers)
    with pytest.raises(InvalidManifest, match=error):
        ModelStore(tmp_path).resolve("m")


def test_unreadable_config_and_corrupt_manifest_delete(tmp_path: Path) -> None:
    put_manifest(
        tmp_path,
        ("registry.ollama.ai", "library", "m", "latest"),
        [(MEDIA_MODEL, GGUF)],
        config=b"[]",
    )
    store = ModelStore(tmp_path)
    assert store.resolve("m").config == ModelConfig()
    broken = tmp_path / "manifests/registry.ollama.ai/library/broken/latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{")
    store.delete("broken")  # an unreadable manifest can still be deleted
    assert not broken.exists()
    with pytest.raises(ModelNotFound, match="model 'ghost' not found"):
        store.copy("ghost", "x")


def test_remove_blob_if_unreferenced(store: ModelStore) -> None:
    used = store.add_blob_bytes(GGUF)
    store.create_model("m", model_blob=used, config=CONFIG)
    loose = store.add_blob_bytes(b"loose")
    assert not store.remove_blob_if_unreferenced(used)
    assert store.remove_blob_if_unreferenced(loose)
    assert not store.remove_blob_if_unreferenced(loose)
    assert store.has_blob(used) and not store.has_blob(loose)


def test_blob_writer_streams_and_aborts(store: ModelStore) -> None:
    with store.open_blob_writer() as writer:
        writer.write(b"part one, ")
        writer.write(b"part two")
        assert writer.size == 18
        digest = writer.commit()
    assert store.read_blob(digest) == b"part one, part two"
    with pytest.raises(StoreError):
        writer.write(b"more")
    with store.open_blob_writer() as abandoned:
        abandoned.write(b"never committed")
    assert not list(store.blobs_dir.glob(".tmp-*"))
    with pytest.raises(BlobTooLarge):
        store.read_blob(digest, max_bytes=4)


def test_hard_link_reuses_an_existing_blob(store: ModelStore, tmp_path: Path) -> None:
    src = tmp_path / "w.gguf"
    src.write_bytes(GGUF)
    digest = store.add_blob_bytes(GGUF)
    inode = store.blob_path(digest).stat().st_ino
    assert store.add_blob_file(src, link=True) == digest
    assert store.blob_path(digest).stat().st_ino == inode
