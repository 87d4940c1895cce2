"""No error body carries a server path: a configuration error met while serving names the
config key only (the file, and whatever its message says, go to the log)."""

from __future__ import annotations

import json
import logging

import pytest

from gatewise.errors import ConfigError, ConflictError, NotConfiguredError
from gatewise.server.errors import error_body

FILE = "/srv/secret-place/gatewise.yaml"


def test_a_config_error_keeps_its_file_for_the_operator_but_not_in_its_message() -> None:
    exc = ConfigError("must be a URL", file=FILE, path="router.redis_url")
    assert str(exc) == f"{FILE}: router.redis_url: must be a URL"  # the CLI prints this
    assert exc.message == "router.redis_url: must be a URL"       # what may travel further
    assert FILE not in json.dumps(exc.to_openai())


def test_a_config_error_while_serving_is_answered_without_any_path(
        caplog: pytest.LogCaptureFixture) -> None:
    exc = ConfigError("model file '/models/private/q4.gguf' does not exist", file=FILE,
                      path="local_models.small")
    with caplog.at_level(logging.ERROR, logger="gatewise.server"):
        status, _, body = error_body(exc, "req_7")
    err = json.loads(body)["error"]
    assert status == 500 and err["type"] == "configuration_error"
    assert "local_models.small" in err["message"] and "req_7" in err["message"]
    assert "/srv" not in body.decode() and "/models" not in body.decode()
    assert "q4.gguf" in caplog.text and FILE in caplog.text  # the operator still learns all


def test_a_feature_the_gateway_is_not_configured_for_is_a_409_naming_the_key() -> None:
    exc = NotConfiguredError("set 'security.encryption_key'")
    assert isinstance(exc, ConflictError)
    status, _, body = error_body(exc, "req_8")
    err = json.loads(body)["error"]
    assert status == 409 and err["code"] == "not_configured"
    assert err["type"] == "invalid_request_error" and "security.encryption_key" in err["message"]
