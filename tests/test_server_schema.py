"""The whole API against its own OpenAPI document (schemathesis): bad or odd input is never a 500.

Every operation gets a bounded number of generated requests (valid and
invalid), sent with an admin token to a live server on loopback; the check is
that no answer is a server error and every error has the one error shape.
"""

from __future__ import annotations

import pytest

pytest.importorskip("schemathesis")

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from serverkit import Server, banking_slice, create_token  # noqa: E402

MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def live(tmp_path_factory, shared_data):
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("schema-ws")
    csv = banking_slice(shared_data, home, per_label_train=4, per_label_test=2)
    assert invoke_cli("--home", home, "ingest", csv, "--dataset", "b5", "--label-col", "label",
                      "--split-col", "split").exit_code == 0
    token = create_token(home, "fuzz", "admin")
    server = Server(home, "--batch-window-ms", "2")
    try:
        yield server, token
    finally:
        server.stop()


@pytest.mark.slow
def test_api_never_answers_with_a_server_error(live):
    """Each operation in turn (schemathesis' pytest plugin does not run on pytest 9, so its engine is driven here)."""
    from hypothesis import given

    server, token = live
    api = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures: list[str] = []
    calls = [0]
    operations = [r.ok() for r in api.get_all_operations()]
    assert len(operations) >= 40
    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            calls[0] += 1
            response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=60)
            where = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.text[:300]}")
            elif response.status_code >= 400 and "json" in str(response.headers.get("content-type", "")):
                body = response.json()
                if case.path.startswith("/v1/"):  # OpenAI's shape, which its clients read
                    shaped = isinstance(body.get("error"), dict) and {"message", "type", "param", "code"} <= set(body["error"])
                else:
                    shaped = {"error", "message", "fix"} <= set(body)
                if not shaped or "Traceback" in response.text:
                    failures.append(f"{where}: not the error shape: {response.text[:300]}")

        run()
    print(f"schemathesis: {calls[0]} requests over {len(operations)} operations")
    assert calls[0] >= 3 * len(operations)
    assert not failures, f"{len(failures)} of {calls[0]} requests failed:\n" + "\n".join(failures[:30])
