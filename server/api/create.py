"""``POST /api/create``: a model from a stored model (``from``) or uploaded GGUF blobs (``files``).

:func:`plan_create` checks everything that can be checked quickly (names, digests, file names,
GGUF headers, template syntax, parameters, quantization source), so a bad request gets a real
400 before any progress is streamed; :func:`run_create` then does the slow part on the job
thread. The server never opens a path the client names: ``from`` is a model name and
``files`` map relative names to content-addressed blobs already in the store.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from models.defaults import config_from_gguf
from models.digest import parse_digest
from models.errors import InvalidDigest, InvalidGGUF, InvalidModelName
from models.errors import ModelNotFound as StoreModelNotFound
from models.gguf import GGUFFile, read_gguf
from models.layers import encode_json_layer
from models.local import LocalModel
from models.manifest import MEDIA_ADAPTER, MEDIA_MODEL, MEDIA_PROJECTOR, ModelConfig
from models.names import ModelName
from models.parameters import validate_parameters
from models.store import ModelStore
from server.api.jobs import Emit
from server.api.manage_types import CreateRequest, ProgressResponse
from server.engine.quantize import QUANTIZE_TYPES, quantize_blob, quantize_type, source_type
from server.engine.templates import load_template
from server.errors import InvalidRequest, ModelNotFound

__all__ = ["CreatePlan", "parse_name", "plan_create", "run_create"]

_ROLES = frozenset({"system", "user", "assistant"})
_DRIVE = re.compile(r"[A-Za-z]:")
_BAD_FROM = (
    "invalid model name in 'from': give the name of a model, or upload the file with "
    "/api/blobs and list it in 'files'"
)
_QUANTIZE_DIGEST = "0000000000000000000"  # what Ollama puts in quantize progress lines


def parse_name(text: str, what: str = "model") -> ModelName:
    """A validated model name; 400 otherwise."""
    try:
        return ModelName.parse(text)
    except InvalidModelName as exc:
        prefix = "" if what == "model" else f"{what}: "
        raise InvalidRequest(prefix + str(exc)) from None


@dataclass(frozen=True)
class CreatePlan:
    """A checked create request."""

    name: ModelName
    model: str  # digest of the GGUF to use (before quantization)
    config: ModelConfig
    base: LocalModel | None = None
    projector: str | None = None
    adapters: tuple[str, ...] = ()
    quantize: str | None = None
    source_type: str = ""
    template: str | None = None
    system: str | None = None
    license: list[str] | None = None
    params: dict[str, object] = field(default_factory=dict)
    messages: list[dict[str, object]] | None = None


def _relative(name: str) -> bool:
    if not name or len(name) > 1024 or "\0" in name or name[0] in "/\\~":
        return False
    if _DRIVE.match(name):
        return False
    return ".." not in re.split(r"[/\\]", name)


def _blobs(store: ModelStore, files: dict[str, str]) -> list[tuple[str, str]]:
    out = []
    for name, digest in files.items():
        if not _relative(name):
            raise InvalidRequest("file names in 'files' must be relative paths")
        try:
            canonical = parse_digest(digest)
        except InvalidDigest:
            raise InvalidRequest("invalid digest format") from None
        if not store.has_blob(canonical):
            raise InvalidRequest(f'blob "{canonical}" not found; upload it with /api/blobs')
        out.append((name, canonical))
    return out


def _header(store: ModelStore, digest: str) -> GGUFFile:
    try:
        return read_gguf(store.blob_path(digest))
    except InvalidGGUF as exc:
        raise InvalidRequest(f"invalid GGUF file: {exc}") from None
    except OSError:
        raise InvalidRequest("the uploaded file cannot be read") from None


def _from_files(store: ModelStore, files: dict[str, str]) -> tuple[str, str | None, ModelConfig]:
    model = projector = None
    config = ModelConfig()
    for name, digest in _blobs(store, files):
        if not name.lower().endswith(".gguf"):
            raise InvalidRequest("only GGUF files can be imported; convert the model first")
        header = _header(store, digest)
        if header.architecture == "clip":
            projector = digest
        elif model is None:
            model, config = digest, config_from_gguf(header)
        else:
            raise InvalidRequest("more than one GGUF model file in 'files'")
    if model is None:
        raise InvalidRequest("no GGUF model file in 'files'")
    return model, projector, config


def plan_create(store: ModelStore, body: CreateRequest) -> CreatePlan:
    """Check a create request (blocking: run it in a thread); raises ServerErrors."""
    name = parse_name(body.model_name())
    template = body.template or None
    if template is not None:
        load_template(template, None, bos="", eos="")  # a syntax error is a 400
    try:
        params = validate_parameters(body.parameters or {})
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    messages: list[dict[str, object]] | None = None
    if body.messages is not None:
        if any(m.role not in _ROLES for m in body.messages):
            raise InvalidRequest("message role must be system, user or assistant")
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
    adapters = tuple(d for _, d in _blobs(store, body.adapters or {}))
    for digest in adapters:
        _header(store, digest)  # llama.cpp will load it: the bounded reader sees it first
    base, projector = None, None
    if body.from_:
        try:
            base_name = ModelName.parse(body.from_)
        except InvalidModelName:
            raise InvalidRequest(_BAD_FROM) from None
        try:
            base = store.resolve(base_name)
        except StoreModelNotFound:
            raise ModelNotFound(f"model '{body.from_}' not found") from None
        model = base.manifest.layers_of(MEDIA_MODEL)[0].digest
        projectors = base.manifest.layers_of(MEDIA_PROJECTOR)
        projector = projectors[0].digest if projectors else None
        adapters = (*(x.digest for x in base.manifest.layers_of(MEDIA_ADAPTER)), *adapters)
        config = base.config
    elif body.files:
        model, projector, config = _from_files(store, body.files)
    else:
        raise InvalidRequest("neither 'from' or 'files' was specified")
    wanted = body.quantize or body.quantization
    quantize = quantize_type(wanted) if wanted else None
    source = source_type(read_gguf(store.blob_path(model))) if quantize else ""
    return CreatePlan(
        name=name,
        model=model,
        config=config,
        base=base,
        projector=projector,
        adapters=adapters,
        quantize=quantize,
        source_type=source,
        template=template if template is not None else base.template if base else None,
        system=body.system or (base.system if base else None),
        license=body.licenses() if body.license is not None else base.license if base else None,
        params={**(base.params if base else {}), **params},  # the request wins
        messages=messages if messages is not None else base.messages if base else None,
    )


def _layer_digests(plan: CreatePlan, model: str) -> list[str]:
    """The digests of the layers :meth:`ModelStore.create_model` will write, in order."""

    def text(value: str) -> str:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()

    out = [model, *([plan.projector] if plan.projector else []), *plan.adapters]
    out += [text(v) for v in (plan.template, plan.system) if v is not None]
    out += [text(v) for v in plan.license or ()]
    for value in (plan.params, plan.messages):
        if value:
            out.append("sha256:" + hashlib.sha256(encode_json_layer(value)).hexdigest())
    return out


def run_create(store: ModelStore, plan: CreatePlan, *, threads: int, emit: Emit) -> None:
    """Quantize if asked, write the layers and the manifest, reporting progress like Ollama."""

    def status(text: str, **fields: int | str) -> None:
        emit(ProgressResponse(status=text, **fields).event())  # type: ignore[arg-type]

    if plan.base is None:
        status("parsing GGUF")
    model, config, created = plan.model, plan.config, set()
    try:
        if plan.quantize:
            label = f"quantizing {plan.source_type} model to {QUANTIZE_TYPES[plan.quantize]}"
            total = store.blob_size(model)

            def progress(fraction: float) -> None:
                done = int(total * fraction)
                status(label, digest=_QUANTIZE_DIGEST, total=total, completed=done)

            model = quantize_blob(store, model, plan.quantize, threads=threads, progress=progress)
            created.add(model)
            header = read_gguf(store.blob_path(model))
            config = config.model_copy(update={"file_type": header.file_type_name or "unknown"})
        for digest in _layer_digests(plan, model):
            new = digest in created or not store.has_blob(digest)
            status(f"{'creating new' if new else 'using existing'} layer {digest}")
        status("writing manifest")
        store.create_model(
            plan.name,
            model_blob=model,
            template=plan.template,
            system=plan.system,
            params=plan.params or None,
            license=plan.license or None,
            messages=plan.messages or None,
            config=config,
            projector_blob=plan.projector,
            adapter_blobs=plan.adapters,
        )
    except BaseException:
        for digest in created:
            store.remove_blob_if_unreferenced(digest)
        raise
    status("success")
