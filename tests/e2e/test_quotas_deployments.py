"""End-to-end: token quotas where the service is deployed for real.

Two library-mode replicas on one PostgreSQL database (``run-configs/azure-postgres.yaml``, each
with an empty state directory) share one count per caller and one for the service: concurrent
requests spread over both replicas never lose an update (the table holds exactly the limits
less every answered request's usage) and overspend a quota by at most what the requests in
flight spend. A service-mode service (in front of a Llama Stack server) counts and refuses the
same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.emulator import EmulatorHandle
from support.postgres import PostgresServer
from support.quotas import answered, query, quota_config, spent
from support.service import (
    ServiceHandle,
    service_config,
    stack_environment,
    start_llama_stack,
    start_replicas,
    start_service,
)

pytestmark = pytest.mark.slow

IN_FLIGHT = 6


@contextlib.contextmanager
def _replicas(
    directory: Path,
    emulator: EmulatorHandle,
    postgres: PostgresServer,
    database: str,
    user_quota: int,
    cluster_quota: int,
) -> Iterator[list[ServiceHandle]]:
    specs = []
    for index in range(2):
        home = directory / f"replica-{index}"
        home.mkdir(parents=True)
        extra = quota_config(user_quota, cluster_quota)
        path = service_config(home, emulator, run_config="azure-postgres.yaml", extra=extra)
        env = stack_environment(emulator, home / "state") | postgres.environment(database)
        specs.append((path, env))
    with start_replicas(specs) as handles:
        yield handles


def _counts(postgres: PostgresServer, database: str) -> dict[tuple[str, str], int]:
    with contextlib.closing(postgres.connect(database)) as connection, connection.cursor() as cur:
        cur.execute("SELECT limiter, subject, available FROM llama_entra_quotas")
        return {(limiter, subject): int(available) for limiter, subject, available in cur}


def test_two_replicas_share_quotas_and_concurrent_requests_overspend_at_most_the_in_flight(
    emulator: EmulatorHandle, postgres: PostgresServer, postgres_db: str, tmp_path: Path
) -> None:
    user_quota, cluster_quota = 600, 900
    with _replicas(tmp_path, emulator, postgres, postgres_db, user_quota, cluster_quota) as pair:
        first = answered(pair[0], "alice", "one two")
        second = answered(pair[1], "alice", "three")
        assert second["available_quotas"] == {
            "user_daily": user_quota - spent(first) - spent(second),
            "cluster_daily": cluster_quota - spent(first) - spent(second),
        }

        def spend_until_refused(worker: int) -> list[int]:
            tokens = []
            for turn in range(60):
                response = query(pair[(worker + turn) % 2], "alice", f"word {worker} {turn}")
                if response.status_code == 429:
                    return tokens
                assert response.status_code == 200, response.text
                tokens.append(spent(response.json()))
            pytest.fail("never refused")

        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            answers = [t for ts in pool.map(spend_until_refused, range(IN_FLIGHT)) for t in ts]
        total = spent(first) + spent(second) + sum(answers)
        # no update lost: the shared row is the limit less every answered request's usage
        counts = _counts(postgres, postgres_db)
        assert counts[("user_daily", "alice")] == user_quota - total
        assert counts[("cluster_daily", "")] == cluster_quota - total
        overspend = total - user_quota
        assert 0 <= overspend <= IN_FLIGHT * max(answers)
        # used up on both replicas: refused before Azure is called; bob hits the cluster limit
        completions = emulator.counters()["completions"]
        for replica in pair:
            refused = query(replica, "alice", "again")
            assert refused.status_code == 429
            assert refused.json()["detail"]["cause"] == "User alice has no available tokens"
        if counts[("cluster_daily", "")] <= 0:
            cluster = query(pair[1], "bob", "hello")
            assert cluster.status_code == 429
            assert cluster.json()["detail"]["cause"] == "Cluster has no available tokens"
        assert emulator.counters()["completions"] == completions


def test_service_mode_service_counts_and_refuses_quotas(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    env = stack_environment(emulator, tmp_path / "stack-state")
    (tmp_path / "stack").mkdir()
    with start_llama_stack(service_config(tmp_path / "stack", emulator), env) as stack:
        (tmp_path / "service").mkdir()
        path = service_config(
            tmp_path / "service",
            emulator,
            mode="service",
            llama_stack_url=stack.url,
            extra=quota_config(60, 1_000_000),
        )
        with start_service(path, env) as service:
            body = answered(service, "carol", "one two three")
            assert body["available_quotas"]["user_daily"] == 60 - spent(body)
            for _ in range(20):
                response = query(service, "carol", "four five six seven")
                if response.status_code == 429:
                    break
            assert response.status_code == 429
            assert response.json() == {
                "detail": {
                    "response": "The quota has been exceeded",
                    "cause": "User carol has no available tokens",
                }
            }
