#!/usr/bin/env bash
# On a GPU machine: the whole GPU benchmark run (benchmarks/gpu.py; --help lists its options), < 8 min.
cd "$(dirname "$0")/.." && exec "${PYTHON:-.venv/bin/python}" benchmarks/gpu.py "$@"
