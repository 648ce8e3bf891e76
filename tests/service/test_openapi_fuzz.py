"""Property-based fuzzing of the running service from its own OpenAPI schema (schemathesis).

Every generated request, valid or not, must get a documented status (never a 5xx), a documented
content type, and a body matching the documented schema. Bounded for CI: few examples per operation,
derandomized, no deadline (the server, not hypothesis, decides how long a request takes).

Hypothesis drives schemathesis's strategies directly: schemathesis's own pytest plugin reaches into pytest
internals that our pytest release no longer has.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Our own routes only: other layers (KServe v2) mounted on the same app have their own tests.
OUR_PATHS = r"^/(v1|health|metrics)"
# Random names would only ever meet 404: aim most requests at real models of both tasks.
NAMES = st.sampled_from(["lenet5-mnist", "digits-roialign", "no-such-model"])
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same requests every run: CI is deterministic
    database=None,  # nothing replayed from, or written to, .hypothesis/
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.slow
def test_no_request_crashes_the_service_or_breaks_the_schema(server_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server_url}/openapi.json").include(path_regex=OUR_PATHS)
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), "the schema has invalid operations"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) >= 6, "the schema lost operations"
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy(), name=NAMES)
        def call(case: schemathesis.Case, name: str) -> None:
            if case.path_parameters and "name" in case.path_parameters:
                case.path_parameters["name"] = name
            case.call_and_validate(checks=CHECKS)

        call()
