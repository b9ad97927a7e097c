"""Routing alerts to channels: rule notify, routes with continue, channel min_severity."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import load_config
from ingest.errors import ConfigError
from ingest.routing import Route, route


def r(**kw: object) -> Route:
    return Route.model_validate(kw)


def test_routes_add_channels_in_order_until_continue_false() -> None:
    routes = [r(min_severity="critical", channels=["oncall"]),
              r(tags=["cyber"], channels=["soc"], **{"continue": False}),
              r(channels=["archive"])]
    assert route("x", "critical", ("cyber",), ["desk"], routes, {}) == ("desk", "oncall", "soc")
    assert route("x", "high", ("military",), ["desk"], routes, {}) == ("desk", "archive")
    assert route("x", "critical", ("military",), ["desk"], routes, {}) == \
        ("desk", "oncall", "archive")


def test_route_conditions_all_hold() -> None:
    route_ = r(severity=["high"], tags=["a"], rules=["one"], channels=["c"])
    assert route_.matches("one", "high", ["a", "b"])
    assert not route_.matches("two", "high", ["a"])
    assert not route_.matches("one", "low", ["a"])
    assert not route_.matches("one", "high", ["b"])


def test_channel_min_severity_drops_lower_alerts_and_repeats_are_removed() -> None:
    floors = {"pager": "high", "desk": None}
    routes = [r(channels=["pager", "desk"])]
    assert route("x", "medium", (), ["desk"], routes, floors) == ("desk",)
    assert route("x", "critical", (), ["desk"], routes, floors) == ("desk", "pager")


def write_config(tmp_path: Path, routes: str) -> Path:
    path = tmp_path / "ingest.yaml"
    path.write_text(f"""
database_url: sqlite:///{tmp_path}/i.db
rules_dir: {tmp_path}
channels:
  desk: {{type: stdout}}
  pager: {{type: file, path: pager.jsonl, min_severity: high}}
routes:
{routes}
""")
    return path


def test_config_routes_and_min_severity(tmp_path: Path) -> None:
    settings = load_config(write_config(tmp_path, "  - {tags: [cyber], channels: [pager]}"))
    assert settings.route("r", "critical", ("cyber",), ("desk",)) == ("desk", "pager")
    assert settings.route("r", "low", ("cyber",), ("desk",)) == ("desk",)
    assert settings.route("r", "critical", ("other",), ("desk",)) == ("desk",)


def test_a_route_to_an_unknown_channel_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]\.channels: 'oncall'"):
        load_config(write_config(tmp_path, "  - {severity: [critical], channels: [oncall]}"))
