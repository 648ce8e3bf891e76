"""The client tests use the service tests' real server and committed data."""

from tests.service.conftest import canvas_files, digit_files, manifests, server_url

__all__ = ["canvas_files", "digit_files", "manifests", "server_url"]
