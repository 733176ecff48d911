"""The Docker compose description: services, DEFECTLINE_ variables and Grafana provisioning."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from defectline.config import load_config
from defectline.config.loader import ENV_NESTING, ENV_NOT_CONFIG, ENV_PREFIX

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
DATASOURCE_UID = "defectline-db"
DEFECTLINE_SERVICES = {"db-migrate", "plc-sim", "worker", "camera"}
# ${NAME} or ${NAME:-default}, as compose interpolates them from the shell.
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _interpolate(value: str) -> str:
    return _INTERPOLATION.sub(lambda match: match.group(2) or "", value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: _interpolate(str(value)) for key, value in environment.items()}


def _config_value(config: Any, env_name: str) -> Any:
    node = config
    for key in env_name[len(ENV_PREFIX):].lower().split(ENV_NESTING):
        node = node[int(key)] if key.isdigit() else getattr(node, key)
    return node.get_secret_value() if isinstance(node, SecretStr) else node


def test_compose_lists_services() -> None:
    services = _compose()["services"]
    assert set(services) == {"kafka", "timescaledb", "grafana"} | DEFECTLINE_SERVICES
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb")
    assert services["db-migrate"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / services["db-migrate"]["build"]["context"]).resolve() == REPO


def test_compose_commands_run_defectline() -> None:
    services = _compose()["services"]
    expected = {
        "worker": ["worker"],
        "plc-sim": ["plc-sim"],
        "camera": ["camera", "--camera", "cam-1"],
        "db-migrate": ["db", "migrate"],
    }
    for name, tail in expected.items():
        command = services[name]["command"]
        assert command[:3] == ["defectline", "--config", "/etc/defectline/plant.yaml"], name
        assert command[3:] == tail, name


def test_compose_camera_id_in_demo_plant() -> None:
    camera_id = _compose()["services"]["camera"]["command"][-1]
    assert camera_id in {camera.id for camera in load_config(environ={}).cameras}


def test_compose_environment_names_config_paths() -> None:
    services = _compose()["services"]
    for name in sorted(DEFECTLINE_SERVICES):
        environment = _environment(services[name])
        config_vars = {key: value for key, value in environment.items()
                       if key.startswith(ENV_PREFIX) and key not in ENV_NOT_CONFIG}
        assert config_vars, f"service {name} sets no {ENV_PREFIX} variables"

        config = load_config(environ=config_vars)
        for key, raw in config_vars.items():
            assert str(_config_value(config, key)) == str(yaml.safe_load(raw)), key


def test_compose_points_services_at_each_other() -> None:
    environment = _environment(_compose()["services"]["worker"])
    config = load_config(environ={key: value for key, value in environment.items()
                                  if key not in ENV_NOT_CONFIG})
    assert config.kafka.bootstrap_servers == "kafka:9092"
    assert config.database.host == "timescaledb"
    assert config.database.port == 5432
    assert config.plcs[0].host == "plc-sim"
    assert config.plcs[0].port == config.simulators.modbus_port
    assert config.plcs[1].endpoint == config.simulators.opcua_endpoint


def test_grafana_datasource_has_fixed_uid() -> None:
    document = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/defectline.yaml").read_text())
    datasources = document["datasources"]
    assert [source["uid"] for source in datasources] == [DATASOURCE_UID]
    assert datasources[0]["url"] == "timescaledb:5432"
    assert datasources[0]["jsonData"]["database"] == "defectline"


def test_grafana_dashboards_provider_matches_mount() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"]
                  if volume.startswith("."))
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/defectline.yaml").read_text())["providers"][0]
    assert mounts["../dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert (DEPLOY / "../dashboards").is_dir()


def test_dashboards_use_provisioned_datasource() -> None:
    for path in sorted((REPO / "dashboards").glob("**/*.json")):
        dashboard = json.loads(path.read_text())
        uids = {source.get("uid") for source in _datasources(dashboard)}
        assert uids <= {DATASOURCE_UID, "${datasource}", "grafana", "-- Grafana --"}, path.name
        # A ${datasource} variable must default to the provisioned uid.
        variables = dashboard.get("templating", {}).get("list", [])
        if "${datasource}" in uids:
            variable = next(v for v in variables if v["name"] == "datasource")
            assert variable["current"]["value"] == DATASOURCE_UID, path.name


def _datasources(node: Any) -> list[Any]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.append(node["datasource"])
        for value in node.values():
            found.extend(_datasources(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_datasources(value))
    return found


def test_docker_compose_config_accepts_file() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True,
                                        check=False, timeout=30).returncode != 0:
        pytest.skip("docker compose is not installed; the YAML checks above still ran")
    completed = subprocess.run([docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
                               capture_output=True, text=True, check=False, timeout=60)
    assert completed.returncode == 0, completed.stderr
