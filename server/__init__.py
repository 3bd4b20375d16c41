"""quantserve: an Ollama-compatible server for quantized GGUF models."""

__version__ = "0.1.0"
