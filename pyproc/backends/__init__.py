"""Backends: each owns its buffers and step loop and exposes ``run(duration_ms)``."""
