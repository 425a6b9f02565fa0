"""taskrunner's benchmark suite: `uv run python -m bench` (see docs/performance.md)."""
