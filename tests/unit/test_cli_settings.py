"""`python -m server serve`: --help lists every variable; a bad value stops start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.settings import describe_settings
from tests.conftest import free_port


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTSERVE_", "OLLAMA_"))}
    # Were a bad value accepted, the server would start here, not on anybody's real port/store.
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{free_port()}",
        OLLAMA_MODELS=str(tmp_path / "store"),
        QUANTSERVE_EMBED_DEFAULT_MODEL="false",
    )
    env.update(extra)
    return env


def _serve(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "serve", *args],
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_every_variable_with_its_meaning(tmp_path: Path) -> None:
    result = _serve(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # argparse may wrap long lines
    for names, default, meaning in describe_settings():
        for name in names.split(" / "):
            assert name in out
        assert " ".join(meaning.split()) in out
        if default:
            assert f"default: {default}" in out


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OLLAMA_NUM_PARALLEL": "abc"}, "OLLAMA_NUM_PARALLEL"),
        ({"OLLAMA_KEEP_ALIVE": "5x"}, "OLLAMA_KEEP_ALIVE"),
        ({"OLLAMA_KV_CACHE_TYPE": "q2"}, "OLLAMA_KV_CACHE_TYPE"),
        ({"OLLAMA_FLASH_ATTENTION": "0", "OLLAMA_KV_CACHE_TYPE": "q8_0"}, "OLLAMA_FLASH_ATTENTION"),
        ({"QUANTSERVE_MAX_QUEUE": "-3"}, "QUANTSERVE_MAX_QUEUE"),
        ({"OLLAMA_HOST": "127.0.0.1:70000"}, "OLLAMA_HOST"),
    ],
)
def test_bad_value_stops_start_up_with_one_line(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = _serve(tmp_path, **env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "store").exists()  # nothing was started or written
