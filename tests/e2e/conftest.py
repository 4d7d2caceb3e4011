"""Fixtures of the end-to-end tests: the real n8n of each version in N8N_VERSIONS
and the stand-in model it calls, one per test session (tests/e2e/n8n_support.py)."""

from tests.e2e.n8n_support import model, n8n, standin_model  # noqa: F401
