"""Exceptions raised by the model registry.

The tree::

    ModelsError
    ├── InvalidModelName (ValueError)   a name that fails Ollama's name rules
    ├── InvalidDigest (ValueError)      not ``sha256[:-]<64 lowercase hex>``
    ├── InvalidGGUF (ValueError)        a GGUF file that fails the bounded reader
    ├── InvalidModelfile (ValueError)   a Modelfile that does not parse
    ├── ModelNotFound (LookupError)     no manifest for the name
    └── StoreError                      anything else the store refuses or fails at
        ├── DigestMismatch (ValueError) content does not hash to the expected digest
        ├── BlobNotFound (LookupError)  a referenced blob is not in the store
        ├── BlobTooLarge (ValueError)   a blob or layer is over its size cap
        └── InvalidManifest (ValueError) a manifest or layer that fails validation

Messages never contain filesystem paths, so callers may show them to clients.
"""

from __future__ import annotations


class ModelsError(Exception):
    """Base class of every error raised by the ``models`` package."""


class InvalidModelName(ModelsError, ValueError):
    """A model name that does not follow ``[host/][namespace/]model[:tag]``."""


class InvalidDigest(ModelsError, ValueError):
    """A digest that is not ``sha256:<64 lowercase hex>`` (or ``sha256-``)."""


class InvalidGGUF(ModelsError, ValueError):
    """A GGUF file that is malformed, hostile or unsupported."""


class InvalidModelfile(ModelsError, ValueError):
    """A Modelfile with a syntax error, unknown instruction or bad parameter."""


class ModelNotFound(ModelsError, LookupError):
    """No manifest exists for the model name (Ollama: ``model 'NAME' not found``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' not found")
        self.name = name


class StoreError(ModelsError):
    """The store cannot do what was asked (I/O error, inconsistent state, ...)."""


class DigestMismatch(StoreError, ValueError):
    """Content whose sha256 differs from the digest it was announced with."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f'digest mismatch, expected "{expected}", got "{got}"')
        self.expected = expected
        self.got = got


class BlobNotFound(StoreError, LookupError):
    """A blob that a manifest or request refers to is missing from the store."""

    def __init__(self, digest: str) -> None:
        super().__init__(f'blob "{digest}" not found')
        self.digest = digest


class BlobTooLarge(StoreError, ValueError):
    """A blob or a text/JSON layer exceeds its size limit."""


class InvalidManifest(StoreError, ValueError):
    """A manifest, config blob or layer that does not validate."""
