"""Unit tests: ``quota_handlers`` takes lightspeed-stack's shape and refuses what it cannot do."""

from __future__ import annotations

import pytest
import yaml

from llama_entra.config import parse_config
from llama_entra.errors import ConfigError

LIGHTSPEED = """
quota_handlers:
  limiters:
    - name: user_monthly_limits
      type: user_limiter
      initial_quota: 50000
      quota_increase: 0
      period: "30 days"
    - name: cluster_monthly_limits
      type: cluster_limiter
      initial_quota: 1000000
      quota_increase: 100
      period: "1 month"
  scheduler:
    period: 300
"""


def test_quota_handlers_lightspeed_limiters_load_as_written() -> None:
    config = parse_config(yaml.safe_load(LIGHTSPEED))
    user, cluster = config.quota_handlers.limiters
    assert (user.type, user.name, user.initial_quota, user.period) == (
        "user_limiter",
        "user_monthly_limits",
        50000,
        "30 days",
    )
    assert (cluster.type, cluster.quota_increase, cluster.period) == (
        "cluster_limiter",
        100,
        "1 month",
    )


def test_quota_handlers_absent_means_no_limiters() -> None:
    assert parse_config({}).quota_handlers.limiters == []


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        (
            {
                "limiters": [
                    {
                        "type": "user_limiter",
                        "name": "u",
                        "initial_quota": 1,
                        "period": "1 fortnight",
                    }
                ]
            },
            "quota_handlers.limiters.0.period",
            "period",
        ),
        (
            {
                "limiters": [
                    {"type": "team_limiter", "name": "u", "initial_quota": 1, "period": "1 day"}
                ]
            },
            "quota_handlers.limiters.0.type",
            "user_limiter",
        ),
        (
            {
                "limiters": [
                    {"type": "user_limiter", "name": "u", "initial_quota": -1, "period": "1 day"}
                ]
            },
            "quota_handlers.limiters.0.initial_quota",
            "0",
        ),
        (
            {
                "limiters": [
                    {"type": "user_limiter", "name": "u", "initial_quota": 1, "period": "1 day"},
                    {"type": "cluster_limiter", "name": "u", "initial_quota": 1, "period": "1 day"},
                ]
            },
            "quota_handlers",
            "unique: u",
        ),
        ({"sqlite": {"db_path": "quota.sqlite"}}, "quota_handlers", "conversation_index"),
        ({"postgres": {"host": "db", "user": "u"}}, "quota_handlers", "conversation_index"),
        ({"enable_token_history": True}, "quota_handlers", "token history"),
    ],
)
def test_quota_handlers_invalid_sections_name_key_and_problem(
    section: dict[str, object], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"quota_handlers": section}, source="llama-entra.yaml")
    assert error.value.key == key
    assert problem in error.value.problem
    assert str(error.value).startswith("llama-entra.yaml: ")
