"""Embedding benchmark (issue #4): 256 short texts, quantserve vs ``Llama.embed`` per text.

quantserve embeds the texts of one ``/api/embed`` request as separate sequences of shared
batches; llama-cpp-python's high-level ``Llama.embed`` is called once per text (what a user of
the Python peer writes). Same GGUF (the default model with mean pooling), same threads.
Run: ``.venv/bin/python -m bench.embed``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.gguf_variants import copy_with_metadata

N_TEXTS = 256
REPEATS = 3
THREADS = min(2, os.cpu_count() or 1)
SUBJECTS = ["cats", "the ocean", "a train", "coffee", "mountains", "rain", "a library", "jazz"]


def texts() -> list[str]:
    """256 short, distinct sentences."""
    return [
        f"Sentence {i}: a short note about {SUBJECTS[i % len(SUBJECTS)]}." for i in range(N_TEXTS)
    ]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_quantserve(gguf: Path, inputs: list[str]) -> tuple[list[float], np.ndarray]:
    """Seconds per run of one /api/embed request with every text, plus the vectors."""
    from models.defaults import import_gguf
    from models.store import ModelStore

    store = Path(tempfile.mkdtemp(prefix="qs-embed-"))
    import_gguf(ModelStore(store), gguf, "bench-embed:latest")
    port = free_port()
    env = {
        **os.environ,
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODELS": str(store),
        "QUANTSERVE_NUM_THREAD": str(THREADS),
        "QUANTSERVE_EMBED_DEFAULT_MODEL": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=600) as http:
            for _ in range(600):
                try:
                    http.get("/")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            http.post("/api/embed", json={"model": "bench-embed", "input": "warm up"})
            times, vectors = [], None
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                r = http.post("/api/embed", json={"model": "bench-embed", "input": inputs})
                times.append(time.perf_counter() - t0)
                r.raise_for_status()
                vectors = np.array(r.json()["embeddings"])
        assert vectors is not None
        return times, vectors
    finally:
        proc.terminate()
        proc.wait(30)


def bench_llama_cpp_python(gguf: Path, inputs: list[str]) -> tuple[list[float], np.ndarray]:
    """Seconds per run of ``Llama.embed`` called once per text, plus the (normalised) vectors."""
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(gguf), embedding=True, n_threads=THREADS, n_threads_batch=THREADS,
        n_ctx=2048, verbose=False,
    )  # fmt: skip
    llm.embed("warm up")
    times, out = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = [llm.embed(text, normalize=True) for text in inputs]
        times.append(time.perf_counter() - t0)
    llm.close()
    return times, np.array(out)


def main() -> int:
    inputs = texts()
    with tempfile.TemporaryDirectory() as tmp:
        gguf = copy_with_metadata(Path(tmp) / "embed.gguf", {"pooling_type": 1})
        ours, ours_vec = bench_quantserve(gguf, inputs)
        peer, peer_vec = bench_llama_cpp_python(gguf, inputs)
    cosine = float(np.min(np.sum(ours_vec * peer_vec, axis=1)))
    q, p = statistics.median(ours), statistics.median(peer)
    lines = [
        f"| embed {N_TEXTS} short texts | quantserve (one /api/embed request) | "
        "llama-cpp-python (Llama.embed per text) | ratio |",
        "|---|---|---|---|",
        f"| seconds (median of {REPEATS}) | {q:.3f} | {p:.3f} | {p / q:.2f}× faster |",
        f"| texts/s | {N_TEXTS / q:.0f} | {N_TEXTS / p:.0f} | |",
        f"| lowest cosine similarity between the two servers' vectors | {cosine:.4f} | | |",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
