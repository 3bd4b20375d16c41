#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama.cpp sources vendored in the llama-cpp-python
# sdist we depend on, so the peer runs the same engine revision as quantserve.
# Idempotent: does nothing when the binary already exists. Everything lands in .cache/ (ignored).
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ROOT}/.cache"
SDIST_DIR="${CACHE}/sdist"
SRC_DIR="${CACHE}/llama_cpp_python-${VERSION}"
BUILD_DIR="${CACHE}/llama-server-build"
BIN="${BUILD_DIR}/bin/llama-server"
JOBS="${BENCH_BUILD_JOBS:-2}"
PIP="${PIP:-${ROOT}/.venv/bin/python -m pip}"

if [[ -x "${BIN}" ]]; then
    echo "llama-server already built: ${BIN}"
    exit 0
fi

mkdir -p "${SDIST_DIR}"
SDIST="${SDIST_DIR}/llama_cpp_python-${VERSION}.tar.gz"
if [[ ! -f "${SDIST}" ]]; then
    ${PIP} download --quiet --no-deps --no-binary :all: "llama-cpp-python==${VERSION}" -d "${SDIST_DIR}"
fi
if [[ ! -d "${SRC_DIR}" ]]; then
    tar -xzf "${SDIST}" -C "${CACHE}"
fi

LLAMA_SRC="${SRC_DIR}/vendor/llama.cpp"
# The sdist has no git metadata, so llama.cpp would report "unknown"; take the revision
# from the changelog entry of this release ("update llama.cpp to ggml-org/llama.cpp@<rev>").
COMMIT="$(awk -v v="## [${VERSION}]" '$0 == v {f = 1; next} f && /^## \[/ {exit}
    f && match($0, /llama\.cpp@[0-9a-f]+/) {print substr($0, RSTART + 10, RLENGTH - 10); exit}' \
    "${SRC_DIR}/CHANGELOG.md")"
COMMIT="${COMMIT:-unknown}"
# Same switches as llama-cpp-python's CPU build (GGML_NATIVE), HTTP client off, only the server.
cmake -S "${LLAMA_SRC}" -B "${BUILD_DIR}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DGGML_CCACHE=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_COMMIT="${COMMIT}" \
    -DBUILD_SHARED_LIBS=OFF
cmake --build "${BUILD_DIR}" --config Release --target llama-server -j "${JOBS}"
"${BIN}" --version
