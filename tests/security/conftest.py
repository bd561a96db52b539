"""Fixtures for the hostile-code tests; the harness itself is in security_harness.py."""

from security_harness import outside_dir, sandbox

__all__ = ["outside_dir", "sandbox"]
