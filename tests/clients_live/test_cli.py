"""The ``quantserve`` client verbs, run as a subprocess against the real server (OLLAMA_HOST)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import server
from tests.conftest import DEFAULT_MODEL, LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]
OPTS = ["-o", "num_predict=8", "-o", "temperature=0"]
MISSING = "no-such-model:1b"


def cli(
    live: LiveServer, *args: str, stdin: str = "", host: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m server ARGS`` (the ``quantserve`` entry point) with OLLAMA_HOST set."""
    env = {**os.environ, "OLLAMA_HOST": host or live.url}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


def rows(output: str) -> tuple[list[str], list[dict[str, str]]]:
    """Parse a CLI table by the header's column offsets (so columns must line up)."""
    header, *lines = output.splitlines()
    names = header.split()
    starts = [header.index(n) for n in names]
    ends = [*starts[1:], None]
    parsed = [
        {n: line[s:e].strip() for n, s, e in zip(names, starts, ends, strict=True)}
        for line in lines
    ]
    return names, parsed


def api(live: LiveServer, method: str, path: str, **kwargs: Any) -> Any:
    with live.client() as http:
        response = http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()


def runner(live: LiveServer) -> Any:
    return next(m.runner for m in live.scheduler().loaded() if m.name == DEFAULT_MODEL)


def finished(live: LiveServer) -> int:
    return sum(runner(live).counters.requests_finished.values())


def cached_texts(live: LiveServer) -> list[str]:
    """What each slot of the default model holds in its KV cache, as text."""
    r = runner(live)
    return [r.model.detokenize(list(slot.cached)) for slot in r._slots]


def test_version(live: LiveServer) -> None:
    out = cli(live, "version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"quantserve version is {server.__version__}\n"


def test_list_is_an_ollama_table(live: LiveServer) -> None:
    model = next(m for m in api(live, "GET", "/api/tags")["models"] if m["name"] == DEFAULT_MODEL)
    out = cli(live, "list")
    assert out.returncode == 0, out.stderr
    names, table = rows(out.stdout)
    assert names == ["NAME", "ID", "SIZE", "MODIFIED"]
    row = next(r for r in table if r["NAME"] == DEFAULT_MODEL)
    assert row["ID"] == model["digest"].removeprefix("sha256:")[:12]
    assert re.fullmatch(r"[0-9a-f]{12}", row["ID"])
    assert 10**7 <= model["size"] < 10**9  # so that the size prints as whole megabytes
    assert row["SIZE"] == f"{model['size'] // 10**6} MB"
    assert re.fullmatch(
        r"(Less than a second|\d+ seconds?|About a minute|\d+ minutes) ago", row["MODIFIED"]
    )

    filtered = cli(live, "ls", "SMOL")  # a case-insensitive prefix, like Ollama
    assert [r["NAME"] for r in rows(filtered.stdout)[1]] == [
        r["NAME"] for r in table if r["NAME"].startswith("smol")
    ]
    assert cli(live, "list", "zzz").stdout.splitlines() == ["NAME    ID    SIZE    MODIFIED"]


def test_ps_is_an_ollama_table(live: LiveServer) -> None:
    api(live, "POST", "/api/generate", json={"model": DEFAULT_MODEL, "keep_alive": "10m"})
    loaded = next(m for m in api(live, "GET", "/api/ps")["models"] if m["name"] == DEFAULT_MODEL)
    out = cli(live, "ps")
    assert out.returncode == 0, out.stderr
    names, table = rows(out.stdout)
    assert names == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    row = next(r for r in table if r["NAME"] == DEFAULT_MODEL)
    assert row["ID"] == loaded["digest"].removeprefix("sha256:")[:12]
    assert re.fullmatch(r"\d+(\.\d)? [KMG]B", row["SIZE"])
    assert row["PROCESSOR"] == "100% CPU"
    assert row["CONTEXT"] == "2048"
    assert re.fullmatch(r"(\d+|About a) minutes? from now", row["UNTIL"])


def test_show_summary_and_fields(live: LiveServer) -> None:
    shown = api(live, "POST", "/api/show", json={"model": DEFAULT_MODEL})
    out = cli(live, "show", DEFAULT_MODEL)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "  Model"
    assert re.search(r"^    architecture {4,}llama$", out.stdout, re.M)
    assert re.search(r"^    context length {4,}\d+$", out.stdout, re.M)
    assert re.search(
        rf"^    quantization {{4,}}{shown['details']['quantization_level']}$", out.stdout, re.M
    )
    assert "  Capabilities\n    completion\n" in out.stdout
    assert re.search(r"^  Parameters\n    stop    \"<\|im_start\|>\"$", out.stdout, re.M)
    assert "  License\n    Apache License 2.0\n" in out.stdout

    expected = {
        "--parameters": shown["parameters"] + "\n",
        "--modelfile": shown["modelfile"] + "\n",
        "--license": shown["license"] + "\n",
        "--template": shown["template"],
        "--system": shown["system"],
    }
    for flag, text in expected.items():
        got = cli(live, "show", DEFAULT_MODEL, flag)
        assert got.returncode == 0, got.stderr
        assert got.stdout == text, flag

    both = cli(live, "show", DEFAULT_MODEL, "--license", "--system")
    assert both.returncode == 1 and both.stderr.startswith("Error: only one of '--license'")


def test_run_streams_an_answer(live: LiveServer) -> None:
    out = cli(live, "run", DEFAULT_MODEL, "What", "is", "2+2?", *OPTS, "--verbose")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n\n") and out.stdout.strip()
    count = re.search(r"^eval count:\s+(\d+) token\(s\)$", out.stderr, re.M)
    assert count is not None and 0 < int(count.group(1)) <= 8  # the -o options reached the server
    assert re.search(r"^eval rate:\s+[\d.]+ tokens/s$", out.stderr, re.M)


def test_run_passes_format_and_keepalive(live: LiveServer) -> None:
    out = cli(live, "run", DEFAULT_MODEL, "Give a colour.", *OPTS, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert out.stdout.lstrip().startswith("{")  # the JSON grammar constrained the answer
    unload = cli(live, "run", DEFAULT_MODEL, "Hi", *OPTS, "--keepalive", "0")
    assert unload.returncode == 0, unload.stderr
    assert not any(m["name"] == DEFAULT_MODEL for m in api(live, "GET", "/api/ps")["models"])


def test_run_without_prompt_chats_over_stdin_lines_with_history(live: LiveServer) -> None:
    api(live, "POST", "/api/generate", json={"model": DEFAULT_MODEL})  # loaded, to read counters
    before = finished(live)
    stdin = (
        "Remember the word pineapple.\n"
        "\n"
        "Which word did I ask you to remember?\n"
        "/bye\n"
        "This line comes after bye.\n"
    )
    out = cli(live, "run", DEFAULT_MODEL, *OPTS, stdin=stdin)
    assert out.returncode == 0, out.stderr
    assert finished(live) - before == 2  # two user turns: the blank line and /bye send nothing
    assert out.stdout.endswith("\n\n") and out.stdout.strip()
    # The second turn was sent with the first one (and the answer) before it.
    texts = cached_texts(live)
    assert any("pineapple" in t and "Which word did I ask" in t for t in texts), texts
    assert not any("after bye" in t for t in texts)


def test_chat_clear_forgets_the_history(live: LiveServer) -> None:
    stdin = "Tell me about apricots.\n/clear\nTell me about turnips.\n"  # ends without /bye
    out = cli(live, "run", DEFAULT_MODEL, *OPTS, stdin=stdin)
    assert out.returncode == 0, out.stderr
    assert "Cleared session context\n" in out.stdout
    texts = cached_texts(live)
    turnips = [t for t in texts if "turnips" in t]
    assert turnips and not any("apricots" in t for t in turnips)


def test_stop_unloads_the_model(live: LiveServer) -> None:
    api(live, "POST", "/api/generate", json={"model": DEFAULT_MODEL})
    assert any(m["name"] == DEFAULT_MODEL for m in api(live, "GET", "/api/ps")["models"])
    out = cli(live, "stop", DEFAULT_MODEL)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert not any(m["name"] == DEFAULT_MODEL for m in api(live, "GET", "/api/ps")["models"])
    assert [r["NAME"] for r in rows(cli(live, "ps").stdout)[1]] == []


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["run", MISSING, "hi"], "", f"Error: model '{MISSING}' not found"),
        (["run", MISSING], "hi\n", f"Error: model '{MISSING}' not found"),
        (["show", MISSING], "", f"Error: model '{MISSING}' not found"),
        (["stop", MISSING], "", f'Error: couldn\'t find model "{MISSING}" to stop'),
        (["run", DEFAULT_MODEL, "hi", "-o", "oops"], "", "Error: invalid option 'oops'"),
    ],
)
def test_errors_print_like_ollama(
    live: LiveServer, args: list[str], stdin: str, message: str
) -> None:
    out = cli(live, *args, stdin=stdin)
    assert out.returncode == 1
    assert out.stderr.startswith(message), out.stderr
    assert out.stdout == ""


def test_no_server_and_bad_usage(live: LiveServer) -> None:
    down = f"127.0.0.1:{free_port()}"
    out = cli(live, "list", host=down)
    assert out.returncode == 1
    assert out.stderr == f"Error: could not connect to a server at http://{down}, is it running?\n"
    usage = cli(live, "run")
    assert usage.returncode == 2 and "the following arguments are required: model" in usage.stderr
