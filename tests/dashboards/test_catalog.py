"""The dashboard files: provisioning rules, panel queries and the macro expander."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from defectline.dashboards.catalog import (
    DashboardError,
    check_dashboard,
    iter_panels,
    load_dashboards,
    with_plant_timezone,
)
from defectline.dashboards.macros import MacroError, expand, interval_text

REPO = Path(__file__).resolve().parents[2]
DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": "${datasource}"}
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
END = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_dashboards_ship_three_views() -> None:
    dashboards = load_dashboards()

    assert sorted(dashboards) == ["defect_analysis", "line_overview", "model_health"]
    assert len({d["uid"] for d in dashboards.values()}) == 3


@pytest.mark.parametrize("name", ["defect_analysis", "line_overview", "model_health"])
def test_dashboard_provisioning_rules(name: str) -> None:
    dashboard = load_dashboards()[name]
    text = json.dumps(dashboard)

    assert "__inputs" not in dashboard
    assert "${DS_" not in text
    assert dashboard.get("id") is None
    assert dashboard["time"]["from"].startswith("now")
    assert dashboard["time"]["to"] == "now"
    ids = [panel["id"] for panel in iter_panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in iter_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            assert target["rawSql"].strip()
    datasource = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "grafana-postgresql-datasource"
    assert datasource["current"]["value"] == "defectline-db"


def test_model_health_has_heatmap_and_drift_annotations() -> None:
    dashboard = load_dashboards()["model_health"]

    assert "heatmap" in {panel["type"] for panel in iter_panels(dashboard)}
    names = {a["name"]: a for a in dashboard["annotations"]["list"]}
    assert "FROM drift_events" in names["Drift alerts"]["target"]["rawSql"]
    assert names["Drift alerts"]["datasource"] == DATASOURCE


def test_provisioned_datasource_uid_matches() -> None:
    import yaml

    from defectline.dashboards import catalog

    path = REPO / "deploy/grafana/provisioning/datasources/defectline.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))

    assert document["datasources"][0]["uid"] == catalog.PROVISIONED_DATASOURCE_UID
    assert document["datasources"][0]["type"] == catalog.DATASOURCE_TYPE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"__inputs": []}, "__inputs"),
        ({"id": 17}, "fixed id 17"),
        ({"time": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}}, "absolute"),
    ],
)
def test_check_dashboard_rejects_import_style(change: dict, message: str) -> None:
    dashboard = json.loads(json.dumps(load_dashboards()["line_overview"])) | change

    with pytest.raises(DashboardError, match=message):
        check_dashboard("bad.json", dashboard)


def test_check_dashboard_rejects_panel_problems() -> None:
    dashboard = json.loads(json.dumps(load_dashboards()["line_overview"]))
    dashboard["panels"][1]["id"] = dashboard["panels"][0]["id"]
    dashboard["panels"][2]["targets"][0]["datasource"] = {"uid": "${DS_POSTGRES}"}
    dashboard["panels"][3]["targets"] = []

    with pytest.raises(DashboardError) as caught:
        check_dashboard("bad.json", dashboard)

    message = str(caught.value)
    assert "reuses a panel id" in message
    assert "${DS_POSTGRES}" in message
    assert "has no SQL query" in message


def test_with_plant_timezone_sets_constant() -> None:
    dashboard = with_plant_timezone(load_dashboards()["line_overview"], "Europe/Berlin")

    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "plant_tz")
    assert variable["query"] == "Europe/Berlin"
    assert variable["current"]["value"] == "Europe/Berlin"


def test_expand_time_macros() -> None:
    sql = (
        "SELECT $__timeGroupAlias(t, $__interval), $__timeGroup(t, '1h') FROM x "
        "WHERE $__timeFilter(t) AND t < $__timeTo() AND t >= $__timeFrom() "
        "AND $__interval_ms > 0 AND e >= $__unixEpochFrom()"
    )

    expanded = expand(sql, START, END, 300)

    assert expanded == (
        'SELECT floor(extract(epoch from t)/300)*300 AS "time", '
        "floor(extract(epoch from t)/3600)*3600 FROM x "
        "WHERE t BETWEEN '2026-03-02T08:00:00Z' AND '2026-03-02T09:00:00Z' "
        "AND t < '2026-03-02T09:00:00Z' AND t >= '2026-03-02T08:00:00Z' "
        "AND 300000 > 0 AND e >= 1772438400"
    )


def test_expand_variables_quote_multi_values() -> None:
    expanded = expand(
        "WHERE s IN ($station) AND tz = '${plant_tz}'",
        START,
        END,
        60,
        {"station": ["s1", "o'brien"], "plant_tz": "Europe/Berlin"},
    )

    assert expanded == "WHERE s IN ('s1','o''brien') AND tz = 'Europe/Berlin'"


def test_expand_unknown_names_raise() -> None:
    with pytest.raises(MacroError, match=r"\$camera has no value"):
        expand("WHERE c IN ($camera)", START, END, 60)
    with pytest.raises(MacroError, match="timeEpoch"):
        expand("SELECT $__timeEpoch(t)", START, END, 60)
    with pytest.raises(MacroError, match="no time zone"):
        expand("SELECT 1", datetime(2026, 1, 1), END, 60)


def test_interval_text_like_grafana() -> None:
    assert [interval_text(s) for s in (0.5, 30, 60, 300, 3600, 86400)] == [
        "500ms",
        "30s",
        "1m",
        "5m",
        "1h",
        "1d",
    ]
