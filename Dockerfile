# quantserve: Ollama-compatible GGUF server. llama-cpp-python builds from source (CPU).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY models ./models
COPY clients ./clients
# Portable build: no -march=native, so the image runs on any x86-64 host.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=4
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* && useradd --create-home quantserve
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER quantserve
ENV OLLAMA_HOST=0.0.0.0:11434 OLLAMA_MODELS=/home/quantserve/.ollama/models
VOLUME /home/quantserve/.ollama
EXPOSE 11434
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:11434/health')"
ENTRYPOINT ["quantserve"]
CMD ["serve"]
