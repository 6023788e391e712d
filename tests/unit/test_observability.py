"""deploy/observability/, checked offline against what the service and the proxy export.

The metric names come from the real registries (``ServiceMetrics`` with a real client holder
and token manager, ``ProxyMetrics``), rendered as ``/metrics`` renders them; every query of
the Grafana dashboard and every alert expression may only use those. The alert rules must
pass ``promtool check rules`` (Debian's ``prometheus`` package; ``.ci/run`` installs it), and
``promtool test rules`` shows the token alert fires only without a successful refresh.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llama_entra.app.metrics import ServiceMetrics
from llama_entra.config import LlamaEntraConfig
from llama_entra.proxy.metrics import ProxyMetrics
from llama_entra.stack import ClientHolder
from support.entra import FakeClock, FakeEntra, fake_manager
from support.service import ROOT

OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"
RULES = OBSERVABILITY / "prometheus-rules.yaml"
_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
}  # fmt: skip
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def _sample_names(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every sample name the service's and the proxy's /metrics show once each was used."""
    return asyncio.run(_exported())


async def _exported() -> set[str]:
    config = LlamaEntraConfig.model_validate({"llama_stack": {"mode": "library"}})
    service_tokens = fake_manager(FakeEntra(FakeClock()))
    service = ServiceMetrics()
    service.attach(ClientHolder(config, None, service_tokens, mode="library"))
    service.observe("/v1/query", "POST", 200, 0.01)
    await service_tokens.token()  # one token request, observed
    proxy_tokens = fake_manager(FakeEntra(FakeClock()))
    proxy = ProxyMetrics()
    proxy.attach(proxy_tokens)
    proxy.requests.labels("200").inc()
    proxy.bytes.labels("upstream").inc(10)
    await proxy_tokens.token()
    names = _sample_names(service.registry) | _sample_names(proxy.registry)
    await service_tokens.aclose()
    await proxy_tokens.aclose()
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # grouping labels
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue  # a function call or an operator
        if match.start() > 0 and (
            text[match.start() - 1].isdigit() or text[match.start() - 1] == "."
        ):
            continue  # an exponent or unit inside a number
        names.add(match.group())
    return names


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found = re.match(r"label_values\(\s*([A-Za-z_:][\w:]*)", query["query"])
            assert found, query
            queries.append(found.group(1))
    return queries


def _rules() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return manifest


def _alert_exprs() -> dict[str, str]:
    return {
        rule["alert"]: rule["expr"]
        for group in _rules()["spec"]["groups"]
        for rule in group["rules"]
    }


def test_observability_name_extraction_sees_metrics_and_skips_the_rest() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{job=~"$job"}[5m])))'
        " / on (job) b_total unless c > 1e3"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_observability_dashboard_queries_use_only_exported_metrics(exported: set[str]) -> None:
    queries = _dashboard_queries()
    used = set().union(*(metric_names(q) for q in queries))
    assert used - exported == set()
    # requests, latency, token expiry and fetch outcomes, 401 retries, proxy bytes
    assert {
        "llama_entra_requests_total",
        "llama_entra_request_duration_seconds_bucket",
        "llama_entra_entra_token_expires_in_seconds",
        "llama_entra_entra_token_fetches_total",
        "llama_entra_azure_unauthorized_retries_total",
        "llama_entra_proxy_bytes_total",
    } <= used


def test_observability_dashboard_would_catch_a_metric_that_is_not_exported(
    exported: set[str],
) -> None:
    assert metric_names("rate(llama_entra_token_expiry_seconds[5m])") - exported


def test_observability_dashboard_is_grafana_json_with_unique_panel_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "llama-entra"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert graphs and all(panel["targets"] for panel in graphs)
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in graphs)


def test_observability_rules_use_only_exported_metrics(exported: set[str]) -> None:
    alerts = _alert_exprs()
    assert set(alerts) == {
        "LlamaEntraTokenExpiringWithoutRefresh",
        "LlamaEntraTokenFetchFailing",
        "LlamaEntraHighServerErrorRate",
        "LlamaEntraProxyHighServerErrorRate",
        "LlamaEntraNotReady",
    }
    for name, expr in alerts.items():
        used = metric_names(expr)
        assert used, name
        assert used - exported == set(), name


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: apt-get install prometheus (.ci/run installs it)")
    return found


def test_observability_rules_manifest_is_a_prometheus_rule_promtool_accepts(
    tmp_path: Path,
) -> None:
    manifest = _rules()
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    groups = tmp_path / "rules.yaml"
    groups.write_text(yaml.safe_dump(manifest["spec"]))
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(groups)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "5 rules found" in checked.stdout


def _expected_annotations(alert: str, labels: dict[str, str]) -> dict[str, str]:
    rule = next(
        r for g in _rules()["spec"]["groups"] for r in g["rules"] if r.get("alert") == alert
    )
    rendered = {}
    for key, template in rule["annotations"].items():
        for name, value in labels.items():
            template = template.replace(f"{{{{ $labels.{name} }}}}", value)
        rendered[key] = template
    return rendered


def test_observability_token_alert_fires_only_without_a_successful_refresh(
    tmp_path: Path,
) -> None:
    groups = tmp_path / "rules.yaml"
    groups.write_text(yaml.safe_dump(_rules()["spec"]))
    alert = "LlamaEntraTokenExpiringWithoutRefresh"
    labels = {"job": "svc", "instance": "a"}
    selector = '{job="svc", instance="a"}'

    def case(fetches: str) -> dict[str, Any]:
        return {
            "interval": "1m",
            "input_series": [
                {"series": f"llama_entra_entra_token_present{selector}", "values": "1x20"},
                # 900 s left, one minute less each minute: under 300 s from minute 11
                {
                    "series": f"llama_entra_entra_token_expires_in_seconds{selector}",
                    "values": "900-60x20",
                },
                {
                    "series": 'llama_entra_entra_token_fetches_total{job="svc", instance="a", '
                    'outcome="success"}',
                    "values": fetches,
                },
            ],
            "alert_rule_test": [
                {"eval_time": "9m", "alertname": alert, "exp_alerts": []},
                {
                    "eval_time": "13m",
                    "alertname": alert,
                    "exp_alerts": (
                        [
                            {
                                "exp_labels": labels | {"severity": "critical"},
                                "exp_annotations": _expected_annotations(alert, labels),
                            }
                        ]
                        if fetches == "1x20"
                        else []
                    ),
                },
            ],
        }

    tests = tmp_path / "tests.yaml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(groups)],
                "evaluation_interval": "1m",
                # no refresh at all; then one successful refresh at minute 10
                "tests": [case("1x20"), case("1x9 2x10")],
            }
        )
    )
    result = subprocess.run(
        [_promtool(), "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_overload_metrics_are_exported(exported: set[str]) -> None:
    assert {
        "llama_entra_event_loop_lag_seconds",
        "llama_entra_admission_waited_total",
        "llama_entra_admission_waiting",
        "llama_entra_admission_refused_total",
    } <= exported
