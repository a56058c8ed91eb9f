"""The city platform sandbox: serves `city/openapi.yaml` with seeded demo data."""

from sandbox.app import SandboxServer, create_app

__all__ = ["SandboxServer", "create_app"]
