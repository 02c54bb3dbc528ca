"""schemathesis against the real daemon: every operation of `/openapi.json`, every check,
its examples, schema-driven and coverage cases, then stateful runs along the links.

The gateway is the `edge-gateway run` process on a real SQLite file, called over real HTTP
with a real OAuth token of a register client. The run is bounded (a fixed number of
examples per operation and of stateful scenarios) and must find no server error and no
response that the document does not promise.

Two of the fuzzer's expectations are told what the document cannot say in JSON Schema:
a schema-valid body may still be refused with a documented 422 (tenders that do not add up
to the total, a receipt refund without lines, a Luhn-valid digit run that the card-number
guard refuses), and `GET /v1/events` without a WebSocket handshake is a documented 400.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import BaseSchema, Case, GenerationMode, HookContext, Response

from tests.core.daemon import ReadySocket, add_client, env_for, free_port, start

MAX_EXAMPLES = 25  # per operation and phase
# Stateful runs, each up to STEPS calls along the links. Hypothesis also draws values from
# the constants in the project's own modules, so the path a run takes moves with any change
# to the source; 200 reach every success path under such changes, 100 did not always.
SCENARIOS = 200
STEPS = 8
REFUSED_BUT_VALID = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]


@dataclass
class Tally:
    """What the fuzzer sent, for the figures the module prints."""

    calls: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    links: Counter[tuple[str, int]] = field(default_factory=Counter)
    # Requests and clock at the last report.
    since: tuple[int, float] = field(default_factory=lambda: (0, time.monotonic()))

    def record(self, case: Case, response: Response) -> None:
        label = case.operation.label
        self.calls[label] += 1
        if case.method.upper() == case.operation.method.upper():  # not a method probe
            self.statuses[(label, response.status_code)] += 1

    def successes(self, label: str) -> int:
        return sum(n for (op, status), n in self.statuses.items() if op == label and status < 300)

    def report(self, what: str) -> str:
        """How many operations and requests, in how long, since the last report."""
        requests, started = self.since
        total, now = sum(self.calls.values()), time.monotonic()
        self.since = (total, now)
        return (
            f"\nschemathesis {what}: {len(self.calls)} operations,"
            f" {total - requests} requests in {now - started:.1f} s"
        )


@dataclass
class Target:
    base: str
    client_id: str
    client_secret: str
    token: str
    tally: Tally


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    folder = tmp_path_factory.mktemp("fuzz")
    ready = ReadySocket(folder)
    port = free_port()
    env = env_for(folder / "data", port, NOTIFY_SOCKET=ready.path)
    creds = add_client(env)
    proc = start(env, folder / "daemon.log")
    base = f"http://127.0.0.1:{port}"
    try:
        ready.wait_for("READY=1")
        answer = requests.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(creds["client_id"], creds["client_secret"]),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        yield Target(
            base, creds["client_id"], creds["client_secret"], answer.json()["access_token"], Tally()
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (folder / "daemon.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ready.close()


@pytest.fixture(scope="module")
def api_schema(gateway: Target) -> BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES},
            "cache": {"enabled": False},  # nothing left behind in the work tree
            "seed": 20261122,  # with derandomized Hypothesis: the same run every time
            "auth": {
                "openapi": {
                    "oauth2": {"bearer": gateway.token},
                    "client": {"username": gateway.client_id, "password": gateway.client_secret},
                }
            },
            "checks": {"positive_data_acceptance": {"expected-statuses": REFUSED_BUT_VALID}},
            "operations": [
                {
                    "include-operation-id": "events",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": [*REFUSED_BUT_VALID, "400"]
                        }
                    },
                }
            ],
        }
    )
    schema = schemathesis.openapi.from_url(f"{gateway.base}/openapi.json", config=config)

    @schema.hook
    def after_call(context: HookContext, case: Case, response: Response) -> None:
        gateway.tally.record(case, response)

    return schema


def bounded(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        derandomize=True,  # the same cases on every run, so CI is repeatable
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )


def test_every_operation_answers_only_what_it_documents(
    api_schema: BaseSchema, gateway: Target
) -> None:
    """Each operation's examples, its coverage cases (boundaries, missing and undocumented
    parameters, other methods), then schema-valid and schema-invalid cases; all checks."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/sales",
        "POST /v1/refunds",
        "GET /v1/refunds/{return_id}",
        "POST /oauth/token",
    }
    for operation in operations:
        generation = api_schema.config.generation_for(operation=operation)
        for case in api_schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=generation
        ):
            case.call_and_validate()
        runs = [(strategy, 1, False) for strategy in operation.get_strategies_from_examples()]
        runs.append((operation.as_strategy(GenerationMode.POSITIVE), MAX_EXAMPLES, False))
        runs.append((operation.as_strategy(GenerationMode.NEGATIVE), MAX_EXAMPLES, True))
        for strategy, count, negative in runs:

            @hypothesis.given(case=strategy)
            @bounded(count)
            def call(case: Case) -> None:
                case.call_and_validate()

            try:
                call()
            except hypothesis.errors.Unsatisfiable:
                # No request breaks this operation's schema (no parameters, or only
                # free-form path segments, where an unknown id is a documented 404).
                if not negative:
                    raise
    assert len(gateway.tally.calls) == len(operations)
    print(gateway.tally.report("examples, coverage and fuzzing"))


def test_stateful_runs_along_the_links_find_nothing(
    api_schema: BaseSchema, gateway: Target
) -> None:
    tally = gateway.tally
    workflow = api_schema.as_state_machine()

    class Following(workflow):  # type: ignore[misc,valid-type]
        """Counts the steps that followed a link, and what they got."""

        def step(self, input):  # a StepInput: the case, and the link it followed if any
            output = super().step(input)
            if input.transition is not None:
                tally.links[(input.transition.id, output.response.status_code)] += 1
            return output

    Following.run(settings=bounded(SCENARIOS))
    print(
        tally.report(f"stateful ({SCENARIOS} scenarios)")
        + "\nsuccesses: "
        + ", ".join(f"{op} {tally.successes(op)}" for op in sorted(tally.calls))
        + "\nlinks followed: "
        + ", ".join(f"{link} -> {status}: {n}" for (link, status), n in sorted(tally.links.items()))
    )
    # The fuzzer reached the success path of every operation on the way from a sale to its
    # refund, and walked links from one success to the next (`test_api_schema` follows
    # each link by hand).
    for label in (
        "POST /v1/sales",
        "GET /v1/sales/{sale_id}",
        "POST /v1/refunds",
        "GET /v1/refunds/{return_id}",
        "POST /v1/returns/lookup",
    ):
        assert tally.successes(label) > 0, (label, tally.statuses)
    assert any(status < 300 for _, status in tally.links), tally.links
