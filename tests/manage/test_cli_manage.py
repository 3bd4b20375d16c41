"""``quantserve pull/push/create/cp/rm`` as a subprocess against a real server (OLLAMA_HOST)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clients._cli_run import CliError
from clients.cli_manage import parse_modelfile
from tests.conftest import DEFAULT_MODEL, LiveServer
from tests.manage.conftest import tiny_layers
from tests.manage.registry_server import Registry

ROOT = Path(__file__).resolve().parents[2]


def cli(server: LiveServer, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLLAMA_HOST": server.url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )


MODELFILE = '''# a comment
FROM ./weights/tiny.gguf
PARAMETER temperature 0.3
parameter stop "<x>"
PARAMETER stop <y>
PARAMETER num_ctx 1024
TEMPLATE """{{ if .System }}{{ .System }}
{{ end }}{{ .Prompt }}"""
SYSTEM """two
lines"""
MESSAGE user hi there
MESSAGE assistant "hello"
LICENSE MIT
'''


def test_parse_modelfile() -> None:
    mf = parse_modelfile(MODELFILE)
    assert mf.from_ == "./weights/tiny.gguf"
    assert mf.parameters == {"temperature": 0.3, "stop": ["<x>", "<y>"], "num_ctx": 1024}
    assert mf.template == "{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}"
    assert mf.system == "two\nlines"
    assert mf.messages == [
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "hello"},
    ]
    assert mf.license == ["MIT"]


@pytest.mark.parametrize(
    "text",
    ["PARAMETER temperature hot\nFROM x", "FROM x\nBOGUS y", "SYSTEM hi", 'FROM x\nSYSTEM """open'],
)
def test_parse_modelfile_errors(text: str) -> None:
    with pytest.raises(CliError):
        parse_modelfile(text)


def test_create_uploads_local_files_and_posts_json(
    server: LiveServer, tmp_path: Path, tiny_gguf: bytes
) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "tiny.gguf").write_bytes(tiny_gguf)
    (tmp_path / "Modelfile").write_text(MODELFILE)
    out = cli(server, "create", "cli-made", "-f", str(tmp_path / "Modelfile"))
    assert out.returncode == 0, out.stderr
    digest = "sha256:" + hashlib.sha256(tiny_gguf).hexdigest()
    assert f"copying file {digest} 100%" in out.stderr
    assert out.stderr.splitlines()[-1] == "success"
    local = server.store.resolve("cli-made")
    assert local.model_path.read_bytes() == tiny_gguf
    assert local.params == {"temperature": 0.3, "stop": ["<x>", "<y>"], "num_ctx": 1024}
    assert local.system == "two\nlines" and local.license == ["MIT"]
    assert local.template == "{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}"
    shown = cli(server, "show", "cli-made", "--modelfile")
    assert shown.returncode == 0, shown.stderr
    assert "\nFROM " in shown.stdout and "PARAMETER stop <x>" in shown.stdout


def test_create_from_a_model_name(server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {DEFAULT_MODEL}\nSYSTEM Be kind.\n")
    out = cli(server, "create", "kind", "-f", "Modelfile", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert server.store.resolve("kind").system == "Be kind."


def test_create_with_a_missing_file_fails_locally(server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text("FROM ./nowhere.gguf\n")
    out = cli(server, "create", "nothing", "-f", str(tmp_path / "Modelfile"))
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == "Error: no such file: ./nowhere.gguf"
    assert not server.store.exists("nothing")


def test_pull_push_cp_rm(server: LiveServer, module_registry: Registry, tiny_gguf: bytes) -> None:
    module_registry.publish_model(tiny_layers(tiny_gguf), "cli/tiny")
    name = module_registry.name("cli/tiny")
    out = cli(server, "pull", name, "--insecure")
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    assert any(
        line.startswith(f"pulling {hashlib.sha256(tiny_gguf).hexdigest()[:12]}") for line in lines
    )
    assert server.store.exists(name)

    copy = module_registry.name("cli/copy")
    out = cli(server, "cp", name, copy)
    assert out.returncode == 0 and out.stdout == f"copied '{name}' to '{copy}'\n"
    out = cli(server, "push", copy, "--insecure")
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines()[-2:] == ["pushing manifest", "success"]
    assert ("cli/copy", "latest") in module_registry.manifests

    out = cli(server, "rm", name, copy)
    assert out.returncode == 0 and out.stdout == f"deleted '{name}'\ndeleted '{copy}'\n"
    assert not server.store.exists(name) and not server.store.exists(copy)
    out = cli(server, "rm", "never-there")
    assert out.returncode == 1
    assert out.stderr == "Error: model 'never-there' not found\n"
