"""Set-up that ``make bench`` does on a fresh machine: build llama-server, make the peer venv.

Both land in the ignored ``.cache/`` folder and are reused on later runs. Everything comes from
the package registries: the llama-cpp-python sdist (whose vendored llama.cpp is built) and the
``llama-cpp-python[server]`` extras (pinned in ``bench/peer-requirements.txt``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = ROOT / ".cache"
LLAMA_SERVER = CACHE / "llama-server-build" / "bin" / "llama-server"
PEER_VENV = CACHE / "peer-venv"
PEER_PYTHON = PEER_VENV / "bin" / "python"
PEER_REQUIREMENTS = HERE / "peer-requirements.txt"
PEER_IMPORTS = "import llama_cpp.server.app, sse_starlette, starlette_context, yaml"


class SetupFailed(Exception):
    """A peer could not be prepared; the message says why."""


def ensure_llama_server() -> Path:
    """Build ``llama-server`` from the vendored llama.cpp unless it is already built."""
    if not LLAMA_SERVER.exists():
        print("building llama-server (several minutes on 2 cores) ...", file=sys.stderr)
        done = subprocess.run(["bash", str(HERE / "build_llama_server.sh")], check=False)
        if done.returncode != 0 or not LLAMA_SERVER.exists():
            raise SetupFailed(f"bench/build_llama_server.sh failed ({done.returncode})")
    return LLAMA_SERVER


def llama_revision(binary: Path) -> str:
    """The llama.cpp revision the binary reports (``version: V (build N, commit REV)``)."""
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"commit (\w+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def ensure_peer_python() -> Path:
    """A separate venv with ``llama-cpp-python[server]``; pip reuses its cached wheel."""
    if _imports_ok():
        return PEER_PYTHON
    print("creating .cache/peer-venv for llama_cpp.server ...", file=sys.stderr)
    if not PEER_PYTHON.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(PEER_VENV)
    pip = [str(PEER_PYTHON), "-m", "pip", "install", "--quiet", "-r", str(PEER_REQUIREMENTS)]
    done = subprocess.run(pip, check=False)
    if done.returncode != 0 or not _imports_ok():
        raise SetupFailed(f"pip install -r {PEER_REQUIREMENTS.name} failed ({done.returncode})")
    return PEER_PYTHON


def _imports_ok() -> bool:
    if not PEER_PYTHON.exists():
        return False
    done = subprocess.run([str(PEER_PYTHON), "-c", PEER_IMPORTS], capture_output=True, check=False)
    return done.returncode == 0
