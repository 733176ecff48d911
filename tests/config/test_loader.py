"""Loading, validating and overriding the plant configuration."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from defectline.cli.main import main
from defectline.config import load_config
from defectline.errors import ConfigError


def write_plant(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def demo_document() -> dict:
    return load_config(environ={}).model_dump(mode="json")


def test_embedded_demo_plant_is_valid():
    config = load_config(environ={})
    assert config.model.class_names == ("ok", "scratch", "pit", "inclusion", "stain")
    assert [station.id for station in config.stations] == ["station-1", "station-2"]
    assert {plc.type for plc in config.plcs} == {"modbus", "opcua"}


def test_unknown_key_names_its_path(tmp_path):
    document = demo_document()
    document["cameras"][0]["source"]["frame_rate"] = 5
    with pytest.raises(ConfigError) as error:
        load_config(write_plant(tmp_path, document), environ={})
    message = str(error.value)
    assert "cameras.0.source.synthetic.frame_rate" in message
    assert "unknown key" in message


def test_wrong_type_names_path_and_value(tmp_path):
    document = demo_document()
    document["plcs"][0]["port"] = "five-oh-two"
    with pytest.raises(ConfigError) as error:
        load_config(write_plant(tmp_path, document), environ={})
    message = str(error.value)
    assert "plcs.0.modbus.port" in message
    assert "'five-oh-two'" in message


def test_station_naming_missing_plc_is_rejected(tmp_path):
    document = demo_document()
    document["stations"][0]["outputs"][0]["plc"] = "line9-modbus"
    with pytest.raises(ConfigError, match="line9-modbus"):
        load_config(write_plant(tmp_path, document), environ={})


def test_invalid_yaml_reports_line(tmp_path):
    path = tmp_path / "plant.yaml"
    path.write_text("kafka:\n  bootstrap_servers: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+"):
        load_config(path, environ={})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found: .*nowhere.yaml"):
        load_config(tmp_path / "nowhere.yaml", environ={})


def test_environment_overrides_nested_and_list_values():
    environ = {
        "DEFECTLINE_KAFKA__BOOTSTRAP_SERVERS": "broker1:9092,broker2:9092",
        "DEFECTLINE_PLCS__0__PORT": "1502",
        "DEFECTLINE_DATABASE__USE_TIMESCALEDB": "on",
        "DEFECTLINE_DATABASE__BATCH_SIZE": "50",
        "DEFECTLINE_LOG_LEVEL": "DEBUG",
    }
    config = load_config(environ=environ)
    assert config.kafka.bootstrap_servers == "broker1:9092,broker2:9092"
    assert config.plcs[0].port == 1502
    assert config.database.use_timescaledb == "on"
    assert config.database.batch_size == 50


def test_environment_override_out_of_range_index_is_named():
    with pytest.raises(ConfigError, match="DEFECTLINE_PLCS__7__PORT"):
        load_config(environ={"DEFECTLINE_PLCS__7__PORT": "1502"})


def test_environment_override_is_validated():
    with pytest.raises(ConfigError, match=r"database\.port") as error:
        load_config(environ={"DEFECTLINE_DATABASE__PORT": "0"})
    assert "DEFECTLINE_DATABASE__PORT" in str(error.value)


def test_section_error_does_not_echo_secrets(tmp_path):
    document = demo_document()
    document["database"]["password"] = "s3cret-pw"
    document["cameras"][1]["station"] = "station-9"
    with pytest.raises(ConfigError) as error:
        load_config(write_plant(tmp_path, document), environ={"DEFECTLINE_PLCS__1__PASSWORD": "pw2"})
    message = str(error.value)
    assert "station-9" in message
    assert "s3cret-pw" not in message
    assert "pw2" not in message


def test_cli_masks_secrets_in_log_and_output(tmp_path, caplog, capsys):
    document = demo_document()
    document["database"]["password"] = "s3cret-pw"
    document["plcs"][1]["password"] = "plc-pw"
    document["plcs"][1]["username"] = "operator"
    path = write_plant(tmp_path, document)

    caplog.set_level(logging.INFO)
    assert main(["--config", str(path), "config"]) == 0
    printed = capsys.readouterr().out
    assert "s3cret-pw" not in printed
    assert "plc-pw" not in printed
    assert "**********" in printed
    assert "effective=" in caplog.text
    assert "s3cret-pw" not in caplog.text
    assert "plc-pw" not in caplog.text


def test_cli_config_error_exits_2_with_message(tmp_path, capsys):
    document = demo_document()
    document["model"]["preprocess"]["mean"] = [0.1, 0.2]
    path = write_plant(tmp_path, document)
    assert main(["--config", str(path), "config"]) == 2
    error = capsys.readouterr().err
    assert "model.preprocess" in error
    assert "mean has 2 values" in error


def test_overlapping_modbus_points_are_rejected(tmp_path):
    document = demo_document()
    points = document["stations"][0]["outputs"][0]["points"]
    points[2]["address"] = 0  # float32 confidence now covers class_code's register 0
    with pytest.raises(ConfigError) as error:
        load_config(write_plant(tmp_path, document), environ={})
    message = str(error.value)
    assert "stations.0.outputs.0" in message
    assert "'class_code' and 'confidence' overlap at holding_register address 0" in message


@pytest.mark.parametrize("frames", ["0", "10"])
def test_drift_rebuild_rejects_tiny_reference(frames, capsys):
    code = main(["drift", "rebuild-reference", "--camera", "cam-1", "--frames", frames])
    assert code == 2
    assert f"--frames is {frames}; give 50 or more" in capsys.readouterr().err
