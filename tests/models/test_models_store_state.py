"""Stateful property test of the store: random create/copy/delete/prune sequences."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from models.errors import ModelNotFound
from models.manifest import ModelConfig
from models.names import ModelName
from models.store import ModelStore
from tests.models.storekit import snapshot

NAMES = st.sampled_from(["a", "b:v1", "ns/c", "B:V1", "host.io/ns/d:2"])
WEIGHTS = st.sampled_from([b"GGUF one", b"GGUF two"])
SYSTEMS = st.sampled_from([None, "shared system", "other system"])


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="store-sm-"))
        self.sentinel = self.tmp / "outside.txt"
        self.sentinel.write_text("x")
        self.store = ModelStore(self.tmp / "root")
        # model key -> manifest digest expected for it
        self.models: dict[tuple[str, str, str, str], str] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(name=NAMES, weights=WEIGHTS, system=SYSTEMS)
    def create(self, name: str, weights: bytes, system: str | None) -> None:
        blob = self.store.add_blob_bytes(weights)
        self.store.create_model(name, model_blob=blob, system=system, config=ModelConfig())
        self.models[ModelName.parse(name).key] = self.store.manifest_digest(name)

    @precondition(lambda self: bool(self.models))
    @rule(data=st.data(), dst=NAMES)
    def copy(self, data: st.DataObject, dst: str) -> None:
        src_key = data.draw(st.sampled_from(sorted(self.models)))
        src = ModelName(*src_key)
        self.store.copy(src, dst)
        self.models[ModelName.parse(dst).key] = self.models[src_key]
        assert self.store.resolve(dst).digest == self.models[src_key]

    @rule(name=NAMES)
    def delete(self, name: str) -> None:
        key = ModelName.parse(name).key
        if key in self.models:
            survivors = [ModelName(*k) for k in self.models if k != key]
            self.store.delete(name)
            del self.models[key]
            for other in survivors:  # shared blobs survive deleting one name
                model = self.store.resolve(other)
                assert model.model_path.is_file()
        else:
            with pytest.raises(ModelNotFound):
                self.store.delete(name)

    @rule()
    def prune(self) -> None:
        self.store.prune()

    @invariant()
    def every_manifest_has_its_blobs(self) -> None:
        for entry in self.store.list_models():
            for digest in entry.manifest.digests:
                assert self.store.has_blob(digest)

    @invariant()
    def list_equals_manifests_on_disk(self) -> None:
        listed = {e.name.key: e.digest for e in self.store.list_models()}
        on_disk = (
            {
                tuple(p.relative_to(self.store.manifests_dir).parts)
                for p in self.store.manifests_dir.rglob("*")
                if p.is_file()
            }
            if self.store.manifests_dir.exists()
            else set()
        )
        assert {ModelName(*parts).key for parts in on_disk} == set(listed)
        assert listed == self.models

    @invariant()
    def nothing_outside_the_root(self) -> None:
        assert sorted(p.name for p in self.tmp.iterdir()) in (
            ["outside.txt"],
            ["outside.txt", "root"],
        )
        assert self.sentinel.read_text() == "x"
        if self.store.root.exists():
            assert all(
                k.startswith(("blobs/", "manifests/", ".lock")) for k in snapshot(self.store.root)
            )


StoreMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=12, deadline=None, database=None
)
TestStoreMachine = StoreMachine.TestCase
