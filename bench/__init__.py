"""Benchmarks: quantserve against llama.cpp's llama-server and llama_cpp.server, in one run."""
