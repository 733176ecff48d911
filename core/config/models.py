"""Pydantic models of the plant configuration: one model per component, nested into `PlantConfig`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Section(BaseModel):
    """Base of every config section: unknown keys are rejected and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- Kafka ----------------------------------------------------------------------------------------


class KafkaConfig(Section):
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers"
    )
    topic_prefix: str = Field(
        "", description="Prefix put before every topic name, e.g. 'plant1.' for a shared cluster"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    topic_partitions: int = Field(
        4,
        ge=1,
        le=1024,
        description="Partitions of topics the worker creates; frames are keyed by camera",
    )
    max_message_bytes: int = Field(
        10_485_760, ge=1_048_576, description="Largest frame message the producer sends, in bytes"
    )


# --- Database -------------------------------------------------------------------------------------


class DatabaseConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = "defectline"
    user: str = "defectline"
    password: SecretStr | None = None
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    batch_size: int = Field(
        200, ge=1, le=10_000, description="Maximum inspection rows written in one transaction"
    )
    use_timescaledb: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: use TimescaleDB hypertables when the extension is available"
    )
    rollup_refresh_s: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="Seconds between refreshes of the rollup views on plain PostgreSQL; 0 disables",
    )
    retention_days: int = Field(
        365, ge=1, le=36_500, description="TimescaleDB only: raw rows older than this are dropped"
    )
    compress_after_days: int = Field(
        7, ge=1, le=36_500, description="TimescaleDB only: chunks older than this are compressed"
    )

    def conninfo(self) -> str:
        """Build a libpq connection string, password included (never log the result)."""
        parts = {
            "host": self.host,
            "port": str(self.port),
            "dbname": self.dbname,
            "user": self.user,
            "connect_timeout": str(max(1, round(self.connect_timeout_s))),
        }
        if self.password is not None:
            parts["password"] = self.password.get_secret_value()
        return " ".join(f"{key}={_quote_conninfo(value)}" for key, value in parts.items())


def _quote_conninfo(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


# --- Model and preprocessing ----------------------------------------------------------------------


class ColorOrder(StrEnum):
    RGB = "rgb"
    BGR = "bgr"
    GRAY = "gray"


class ResizeMode(StrEnum):
    STRETCH = "stretch"
    LETTERBOX = "letterbox"


class Interpolation(StrEnum):
    NEAREST = "nearest"
    LINEAR = "linear"
    CUBIC = "cubic"
    AREA = "area"


class Layout(StrEnum):
    NCHW = "nchw"
    NHWC = "nhwc"


class PreprocessConfig(Section):
    """How a decoded frame becomes the model's input tensor; nothing here is guessed from the model."""

    width_px: int = Field(..., ge=1, le=8192, description="Model input width")
    height_px: int = Field(..., ge=1, le=8192, description="Model input height")
    resize: ResizeMode = ResizeMode.STRETCH
    interpolation: Interpolation = Interpolation.LINEAR
    letterbox_fill: int = Field(114, ge=0, le=255, description="Pad value for letterbox borders")
    color: ColorOrder = Field(ColorOrder.RGB, description="Channel order the model expects")
    scale: float = Field(1 / 255, gt=0, description="Multiplier applied to 8-bit pixels first")
    mean: tuple[float, ...] = Field((0.0,), description="Subtracted per channel after scaling")
    std: tuple[float, ...] = Field((1.0,), description="Divisor per channel after the mean")
    layout: Layout = Layout.NCHW

    @property
    def channels(self) -> int:
        return 1 if self.color is ColorOrder.GRAY else 3

    @model_validator(mode="after")
    def _check_channel_stats(self) -> PreprocessConfig:
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                raise ValueError(
                    f"{name} has {len(values)} values but color '{self.color.value}' has "
                    f"{self.channels} channel(s); give 1 value or {self.channels}"
                )
        if any(value == 0 for value in self.std):
            raise ValueError("std must not contain 0")
        return self


class ModelTask(StrEnum):
    """Model families; `auto` reads the family from the ONNX metadata and outputs at start-up."""

    AUTO = "auto"
    CLASSIFICATION = "classification"
    DETECTION = "detection"
    SEGMENTATION = "segmentation"
    ANOMALY = "anomaly"


class DetectionSettings(Section):
    """Settings of object detectors (Ultralytics YOLOv8/v9/v11 ONNX exports)."""

    format: Literal["auto", "raw", "nms"] = Field(
        "auto",
        description="raw: batch x (4 + classes) x anchors without NMS; nms: batch x N x 6 "
        "(x1, y1, x2, y2, score, class) with NMS inside the model; auto: read from the shape",
    )
    scores: Literal["probabilities", "logits"] = Field(
        "probabilities", description="Ultralytics exports return class probabilities"
    )
    confidence_threshold: float = Field(
        0.25, ge=0, le=1, description="Candidates below this class score are dropped before NMS"
    )
    iou_threshold: float = Field(0.45, gt=0, le=1, description="NMS IoU, per class")
    class_iou_thresholds: dict[str, float] = Field(
        default_factory=dict, description="NMS IoU for single classes, overriding iou_threshold"
    )
    max_detections: int = Field(300, ge=1, le=10_000)


class SegmentationSettings(Section):
    """Settings of per-pixel segmenters (U-Net style, output batch x C x H x W)."""

    output: Literal["logits", "probabilities"] = "logits"
    activation: Literal["auto", "sigmoid", "softmax"] = Field(
        "auto", description="auto: sigmoid for one channel, softmax over channels otherwise"
    )
    background_class: int | None = Field(
        0, ge=0, description="Channel that means 'no defect' for softmax outputs; None: none"
    )
    mask_threshold: float = Field(0.5, gt=0, lt=1, description="Pixel probability of a defect")


class AnomalySettings(Section):
    """Settings of anomaly models (anomalib-style: image score plus anomaly map, optional mask).

    Unset thresholds and normalisation bounds are read from the ONNX metadata keys
    `image_threshold`, `pixel_threshold`, `min` and `max`.
    """

    score_output: str | None = Field(None, description="Default: output 'pred_score' if present")
    map_output: str | None = Field(None, description="Default: output 'anomaly_map' if present")
    mask_output: str | None = Field(None, description="Default: output 'pred_mask' if present")
    normalization: Literal["min_max", "none"] = Field(
        "min_max",
        description="min_max: (score - threshold) / (max - min) + 0.5, clipped to [0, 1], so "
        "the threshold maps to 0.5; none: the model already returns scores in [0, 1]",
    )
    image_threshold: float | None = None
    pixel_threshold: float | None = None
    min_score: float | None = Field(None, description="Normalisation minimum of raw scores")
    max_score: float | None = Field(None, description="Normalisation maximum of raw scores")
    class_name: str = Field("anomaly", description="Class name of anomalous parts and regions")


class GoldenImage(Section):
    """An image with the model outputs recorded for it (an .npz of output name to array)."""

    image: Path
    outputs: Path


class ParityConfig(Section):
    """Golden images run through the inference path at start-up, before the worker is ready."""

    images: tuple[GoldenImage, ...] = ()
    atol: float = Field(1e-4, ge=0, description="Absolute tolerance per output value")
    rtol: float = Field(1e-3, ge=0, description="Relative tolerance per output value")


class ModelConfig(Section):
    path: str = Field(
        "builtin:surface-demo",
        description="ONNX file path, or 'builtin:surface-demo' for the bundled demo model",
    )
    name: str | None = Field(None, description="Model name in verdicts; default: the file stem")
    version: str = Field("1", description="Model version written into every verdict")
    task: ModelTask = Field(ModelTask.CLASSIFICATION, description="Model family, or auto")
    class_names: tuple[str, ...] = Field(
        (),
        description="One name per model class; detectors may leave it empty to use the names "
        "in the ONNX metadata",
    )
    pass_label: str = Field(
        "ok",
        description="Class name of parts without findings for detection, segmentation and "
        "anomaly models; their verdict class codes are 0 for it and 1 + class index otherwise",
    )
    detection: DetectionSettings = DetectionSettings()
    segmentation: SegmentationSettings = SegmentationSettings()
    anomaly: AnomalySettings = AnomalySettings()
    parity: ParityConfig = ParityConfig()
    pass_classes: tuple[str, ...] = Field(
        (), description="Classes that mean a good part; every other class rejects the part"
    )
    output: Literal["logits", "probabilities"] = Field(
        "logits", description="Whether the model output needs a softmax"
    )
    output_name: str | None = Field(None, description="Output to read; default: the first one")
    preprocess: PreprocessConfig
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",), description="onnxruntime execution providers, in priority order"
    )
    intra_op_threads: int = Field(0, ge=0, le=256, description="0 lets onnxruntime choose")

    @model_validator(mode="after")
    def _check_pass_classes(self) -> ModelConfig:
        if self.task is ModelTask.CLASSIFICATION and not self.class_names:
            raise ValueError("class_names is required for task 'classification': one per output")
        unknown = [name for name in self.pass_classes if name not in self.class_names]
        if unknown:
            raise ValueError(
                f"pass_classes {unknown} are not in class_names {list(self.class_names)}"
            )
        return self


# --- Cameras --------------------------------------------------------------------------------------


class LightingChange(Section):
    """One step of a synthetic camera's schedule, applied from `from_frame` on."""

    from_frame: int = Field(..., ge=0)
    brightness_gain: float = Field(1.0, gt=0, le=4)
    blur_sigma_px: float = Field(0.0, ge=0, le=20)


class SyntheticSource(Section):
    type: Literal["synthetic"] = "synthetic"
    width_px: int = Field(256, ge=32, le=4096)
    height_px: int = Field(256, ge=32, le=4096)
    fps: float = Field(10.0, gt=0, le=1000)
    defect_rate_pct: float = Field(30.0, ge=0, le=100)
    defect_kinds: tuple[str, ...] = ("scratch", "pit", "inclusion", "stain")
    seed: int = 0
    schedule: tuple[LightingChange, ...] = ()


class FolderSource(Section):
    type: Literal["folder"] = "folder"
    path: Path
    patterns: tuple[str, ...] = ("*.png", "*.jpg", "*.jpeg", "*.bmp", "*.tif", "*.tiff")
    recursive: bool = False
    poll_interval_ms: int = Field(500, ge=10, le=60_000)
    settle_ms: int = Field(
        200,
        ge=0,
        le=60_000,
        description="A new file is read only once its size is stable this long",
    )
    watch: bool = Field(True, description="Keep polling for new files after the existing ones")


class OpenCvSource(Section):
    type: Literal["opencv"] = "opencv"
    uri: str = Field(
        ..., description="Video file path, RTSP/HTTP URL, or a device index such as '0'"
    )
    max_fps: float | None = Field(None, gt=0, le=1000, description="Drop frames above this rate")
    reconnect_delay_ms: int = Field(2000, ge=100, le=600_000)
    loop_file: bool = Field(False, description="Restart a video file at its end")


CameraSource = Annotated[SyntheticSource | FolderSource | OpenCvSource, Field(discriminator="type")]


class CameraConfig(Section):
    id: str = Field(..., pattern=r"^[A-Za-z0-9._-]{1,64}$")
    station: str
    source: CameraSource
    encoding: Literal["jpeg", "png"] = Field(
        "png",
        description="Encoding of frames the camera produces itself (files are sent as stored)",
    )
    jpeg_quality: int = Field(92, ge=1, le=100)
    enabled: bool = True


# --- PLCs -----------------------------------------------------------------------------------------


class VerdictField(StrEnum):
    """Values of a verdict that a PLC map can place into a register or node."""

    REJECT = "reject"
    CLASS_CODE = "class_code"
    CONFIDENCE = "confidence"
    SEQUENCE = "sequence"
    FRAME_SEQUENCE = "frame_sequence"
    UNCERTAIN = "uncertain"
    # The part id of the PLC's trigger that the verdict's frame was matched to (an integer).
    PART_ID = "part_id"
    # Handshake signals: written by the inspector (result_valid, result_sequence, heartbeat)
    # or read from the PLC (trigger, ack, part_id). Only a station's `handshake` may map them.
    RESULT_VALID = "result_valid"
    RESULT_SEQUENCE = "result_sequence"
    HEARTBEAT = "heartbeat"
    TRIGGER = "trigger"
    ACK = "ack"


HANDSHAKE_FIELDS = frozenset(
    {
        VerdictField.RESULT_VALID,
        VerdictField.RESULT_SEQUENCE,
        VerdictField.HEARTBEAT,
        VerdictField.TRIGGER,
        VerdictField.ACK,
    }
)


class ModbusTable(StrEnum):
    COIL = "coil"
    HOLDING_REGISTER = "holding_register"
    # Read-only tables (function codes 2 and 4); only handshake inputs may use them.
    DISCRETE_INPUT = "discrete_input"
    INPUT_REGISTER = "input_register"


BIT_TABLES = frozenset({ModbusTable.COIL, ModbusTable.DISCRETE_INPUT})
WRITABLE_TABLES = frozenset({ModbusTable.COIL, ModbusTable.HOLDING_REGISTER})


class ModbusPoint(Section):
    """One value in the PLC's Modbus map, at a 0-based `address` or a 1-based `reference`."""

    field: VerdictField
    table: ModbusTable
    address: int = Field(..., ge=0, le=65535, description="0-based protocol address")
    reference: str | None = Field(
        None,
        description="The 1-based convention instead of table and address: '40001' is holding "
        "register 0, '30001' input register 0, '10001' discrete input 0, '00001' coil 0",
    )
    dtype: Literal["bool", "int16", "uint16", "int32", "uint32", "float32"] = "uint16"
    word_order: Literal["ABCD", "CDAB", "BADC", "DCBA"] = Field(
        "ABCD", description="Byte order of 32-bit values across two registers"
    )
    scale: float = Field(1.0, gt=0, description="Multiplier applied before writing integers")

    @model_validator(mode="before")
    @classmethod
    def _convert_reference(cls, data: object) -> object:
        # Imported here because the PLC package imports this module.
        from defectline.connectors.plc.addressing import convert_point_reference

        return convert_point_reference(data)

    @model_validator(mode="after")
    def _check_table_dtype(self) -> ModbusPoint:
        if (self.table in BIT_TABLES) != (self.dtype == "bool"):
            raise ValueError(
                f"{self.table.value} at address {self.address} has dtype '{self.dtype}'; "
                "coils and discrete inputs take dtype 'bool' and registers a numeric dtype"
            )
        return self


class ModbusPlcConfig(Section):
    """Connection to one Modbus TCP device; what each station writes there is in its `outputs`."""

    type: Literal["modbus"] = "modbus"
    name: str = Field(..., pattern=r"^[A-Za-z0-9._-]{1,64}$")
    host: str = "127.0.0.1"
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255)
    timeout_ms: int = Field(1000, ge=10, le=60_000)


class OpcUaNode(Section):
    """One variable on the OPC UA server, by `node_id` or by `browse_path` (exactly one)."""

    field: VerdictField
    node_id: str | None = Field(None, description="NodeId string, e.g. 'ns=2;s=Station1.Reject'")
    browse_path: str | None = Field(
        None,
        description="Path of browse names from the Objects folder, each 'ns:Name', separated "
        "by '/', e.g. '2:Line1/2:Station1/2:Reject'; resolved to a NodeId at connect",
    )

    @model_validator(mode="after")
    def _check_one_target(self) -> OpcUaNode:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError(
                f"node for field '{self.field.value}' needs exactly one of node_id and "
                f"browse_path; got node_id={self.node_id!r}, browse_path={self.browse_path!r}"
            )
        return self

    @property
    def target(self) -> str:
        """The configured node id or browse path, for messages and as a lookup key."""
        return self.node_id if self.node_id is not None else f"path {self.browse_path}"


class OpcUaPlcConfig(Section):
    """Connection to one OPC UA server; what each station writes there is in its `outputs`."""

    type: Literal["opcua"] = "opcua"
    name: str = Field(..., pattern=r"^[A-Za-z0-9._-]{1,64}$")
    endpoint: str = Field(..., pattern=r"^opc\.tcp://")
    username: str | None = None
    password: SecretStr | None = None
    timeout_ms: int = Field(2000, ge=10, le=60_000)
    security_policy: Literal["None", "Basic256Sha256"] = Field(
        "None", description="None for labs; Basic256Sha256 for plants"
    )
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = Field(
        "None", description="Message security mode; must be None exactly when the policy is None"
    )
    certificate_path: Path | None = Field(
        None, description="Client certificate (DER or PEM) for Basic256Sha256"
    )
    private_key_path: Path | None = Field(
        None, description="Private key (PEM or DER) of the client certificate"
    )
    server_certificate_path: Path | None = Field(
        None, description="Server certificate to trust; default: the one the endpoint offers"
    )
    application_uri: str = Field(
        "urn:defectline:inspector",
        description="Client application URI; must be the URI SAN of the client certificate",
    )

    @model_validator(mode="after")
    def _check_security(self) -> OpcUaPlcConfig:
        where = f"PLC '{self.name}'"
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError(
                f"{where}: security_policy '{self.security_policy}' does not fit security_mode "
                f"'{self.security_mode}'; use None with None, or Basic256Sha256 with Sign or "
                "SignAndEncrypt"
            )
        has_keys = self.certificate_path is not None and self.private_key_path is not None
        if self.security_policy != "None" and not has_keys:
            raise ValueError(
                f"{where}: security_policy {self.security_policy} needs certificate_path and "
                "private_key_path"
            )
        return self


PlcConfig = Annotated[ModbusPlcConfig | OpcUaPlcConfig, Field(discriminator="type")]


class PlcOutput(Section):
    """The values one station writes to one PLC: `points` for Modbus, `nodes` for OPC UA."""

    plc: str = Field(..., description="Name of a PLC in `plcs`")
    points: tuple[ModbusPoint, ...] = ()
    nodes: tuple[OpcUaNode, ...] = ()

    @model_validator(mode="after")
    def _check_points_do_not_overlap(self) -> PlcOutput:
        taken: dict[tuple[str, int], str] = {}
        for point in self.points:
            width = 2 if point.dtype in ("int32", "uint32", "float32") else 1
            for address in range(point.address, point.address + width):
                other = taken.get((point.table.value, address))
                if other is not None:
                    raise ValueError(
                        f"points '{other}' and '{point.field.value}' overlap at "
                        f"{point.table.value} address {address}; a 32-bit value takes two "
                        "registers, so move one of them"
                    )
                taken[(point.table.value, address)] = point.field.value
        return self


Point = tuple[float, float]


class DecisionRules(Section):
    """How one station turns model findings into pass, reject or uncertain.

    A finding rejects the part when its confidence reaches its class threshold and its area
    the class minimum. A finding within `uncertain_margin` below its threshold makes the part
    uncertain (manual inspection) unless another finding rejects it. ROI and ignore areas are
    in frame pixels; regions and boxes count only inside the ROI and outside the ignore areas.
    """

    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Minimum confidence per class name to reject"
    )
    default_threshold: float = Field(0.0, ge=0, le=1, description="For classes not listed")
    uncertain_margin: float = Field(
        0.0, ge=0, le=1, description="Width of the uncertain band below each threshold"
    )
    pass_min_confidence: float = Field(
        0.0, ge=0, le=1, description="Classification: a pass below this confidence is uncertain"
    )
    min_area_px: dict[str, int] = Field(
        default_factory=dict, description="Minimum region or box area per class, in pixels"
    )
    default_min_area_px: int = Field(0, ge=0)
    min_area_pct: float = Field(0.0, ge=0, le=100, description="Minimum area, % of the frame")
    roi_polygons: tuple[tuple[Point, ...], ...] = Field(
        (), description="Areas inspected, as (x, y) frame pixel polygons; empty: whole frame"
    )
    ignore_polygons: tuple[tuple[Point, ...], ...] = Field(
        (), description="Areas never inspected, as (x, y) frame pixel polygons"
    )
    roi_mask_path: Path | None = Field(
        None, description="Image of the frame size; non-zero pixels are inspected"
    )
    ignore_mask_path: Path | None = Field(
        None, description="Image of the frame size; non-zero pixels are never inspected"
    )
    uncertain_reject: bool = Field(
        True, description="Write reject=true to PLCs for uncertain parts (out to manual check)"
    )

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, values: dict[str, float]) -> dict[str, float]:
        bad = {name: value for name, value in values.items() if not 0 <= value <= 1}
        if bad:
            raise ValueError(f"thresholds {bad} are outside [0, 1]")
        return values

    @field_validator("roi_polygons", "ignore_polygons")
    @classmethod
    def _check_polygons(
        cls, polygons: tuple[tuple[Point, ...], ...]
    ) -> tuple[tuple[Point, ...], ...]:
        for index, polygon in enumerate(polygons):
            if len(polygon) < 3:
                raise ValueError(f"polygon {index} has {len(polygon)} points; give at least 3")
        return polygons


class HandshakeConfig(Section):
    """The part handshake of a station with one PLC; see docs/plc.md for the signal sequence.

    `points` (Modbus) or `nodes` (OPC UA) map the fields trigger and result_valid (required),
    result_sequence, part_id, ack and heartbeat (optional).
    """

    plc: str = Field(..., description="Name of a PLC in `plcs`")
    points: tuple[ModbusPoint, ...] = ()
    nodes: tuple[OpcUaNode, ...] = ()
    poll_interval_ms: int = Field(
        20, ge=5, le=10_000, description="Modbus: period of reading the trigger, part id and ack"
    )
    sampling_interval_ms: int = Field(
        50,
        ge=0,
        le=10_000,
        description="OPC UA: sampling and publishing interval of the subscription to the "
        "trigger, part id and ack",
    )
    part_window_ms: int = Field(
        1000,
        ge=1,
        le=600_000,
        description="Frames captured up to this long after a trigger get that trigger's part id",
    )
    ack_timeout_ms: int = Field(
        1000, ge=1, le=600_000, description="Wait this long for the ack before clearing the strobe"
    )
    result_valid_hold_ms: int = Field(
        200, ge=1, le=600_000, description="Without an ack point: how long result_valid stays on"
    )
    heartbeat_interval_ms: int = Field(
        500, ge=10, le=600_000, description="Period of the heartbeat write"
    )

    @model_validator(mode="after")
    def _check_fields(self) -> HandshakeConfig:
        mapped = [item.field for item in (*self.points, *self.nodes)]
        allowed = HANDSHAKE_FIELDS | {VerdictField.PART_ID}
        unknown = sorted(field.value for field in mapped if field not in allowed)
        if unknown:
            raise ValueError(
                f"handshake maps {unknown}, which are verdict fields; put them in the station's "
                f"outputs. A handshake maps {sorted(field.value for field in allowed)}"
            )
        missing = [
            field.value
            for field in (VerdictField.TRIGGER, VerdictField.RESULT_VALID)
            if field not in mapped
        ]
        if missing:
            raise ValueError(f"handshake with PLC '{self.plc}' lacks the required {missing}")
        twice = sorted({field.value for field in mapped if mapped.count(field) > 1})
        if twice:
            raise ValueError(f"handshake maps {twice} more than once")
        return self

    def find(self, field: VerdictField) -> ModbusPoint | OpcUaNode | None:
        """Return the point or node mapped to `field`, or None."""
        for item in (*self.points, *self.nodes):
            if item.field is field:
                return item
        return None


class StationConfig(Section):
    id: str = Field(..., pattern=r"^[A-Za-z0-9._-]{1,64}$")
    outputs: tuple[PlcOutput, ...] = Field(
        (), description="PLC maps that receive this station's verdicts"
    )
    decision: DecisionRules = DecisionRules()
    result_deadline_ms: int | None = Field(
        None,
        ge=1,
        le=600_000,
        description="Capture until the part reaches the reject gate; a verdict not written by "
        "then is replaced by the fail-safe action. None: no deadline",
    )
    fail_safe_action: Literal["reject", "pass", "none"] = Field(
        "reject",
        description="Written when the deadline passes first: reject diverts the part for a "
        "manual check, pass lets it through, none writes nothing",
    )
    fail_safe_class_code: int = Field(
        65535,
        ge=0,
        le=65535,
        description="class_code written with a fail-safe result, so the PLC can tell it apart",
    )
    handshake: HandshakeConfig | None = Field(
        None, description="Part trigger, result strobe, ack and heartbeat with one PLC"
    )


# --- Worker and simulators ------------------------------------------------------------------------


class WorkerConfig(Section):
    app_id: str = Field("defectline", description="Faust application id and consumer group")
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535, description="Health and Prometheus metrics port")
    data_dir: Path = Field(Path(".defectline/worker"), description="Faust table state directory")
    inference_threads: int = Field(1, ge=1, le=64, description="Threads running model inference")
    dead_letter_enabled: bool = True


class InferenceConfig(Section):
    """Micro-batching of the inference agent: a batch runs when full or after the wait."""

    batch_size: int = Field(8, ge=1, le=1024, description="Frames per model run, at most")
    max_wait_ms: float = Field(
        5.0, ge=0, le=10_000, description="Longest wait for a batch to fill after its first frame"
    )


class LocalArchiveConfig(Section):
    type: Literal["local"] = "local"
    path: Path = Field(Path(".defectline/archive"), description="Directory of stored images")


class S3ArchiveConfig(Section):
    """An S3-compatible bucket (AWS S3, MinIO, Ceph); needs the `s3` extra (boto3)."""

    type: Literal["s3"] = "s3"
    bucket: str = Field(..., min_length=3, max_length=63)
    prefix: str = Field("", description="Key prefix, e.g. 'plant1/evidence/'")
    endpoint_url: str | None = Field(None, description="For S3-compatible stores; None: AWS")
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0, le=300, description="Connect and read timeout")


ArchiveStore = Annotated[LocalArchiveConfig | S3ArchiveConfig, Field(discriminator="type")]


class ArchiveConfig(Section):
    """Frame archive for evidence images: an overlay per rejected or uncertain part."""

    evidence: bool = Field(True, description="Store an overlay image for each reject")
    evidence_uncertain: bool = Field(True, description="Also for uncertain parts")
    jpeg_quality: int = Field(90, ge=1, le=100)
    store: ArchiveStore = LocalArchiveConfig()


class SimulatorConfig(Section):
    modbus_host: str = "127.0.0.1"
    modbus_port: int = Field(5020, ge=1, le=65535)
    opcua_endpoint: str = Field("opc.tcp://127.0.0.1:4840/defectline/", pattern=r"^opc\.tcp://")


# --- Drift ----------------------------------------------------------------------------------------


class DriftConfig(Section):
    """Drift detection per camera against a reference profile; see docs/drift.md.

    The defaults were chosen with `python -m bench.drift` on the synthetic camera and the demo
    model: no false alarm in 20 000 stable frames per camera, a 20% brightness drop found
    within about 20 frames.
    """

    enabled: bool = Field(True, description="Run the drift agent in the worker")
    reference_frames: int = Field(
        500, ge=50, le=1_000_000, description="Frames a live reference profile is built from"
    )
    window_frames: int = Field(
        200, ge=20, le=100_000, description="Sliding window compared with the reference by PSI"
    )
    uncertain_below: float = Field(
        0.6, gt=0, le=1, description="A verdict with a lower top-1 confidence counts as uncertain"
    )
    psi_alert: float = Field(
        0.25, gt=0, le=10, description="Confidence or class-mix PSI that starts an episode"
    )
    psi_recover: float = Field(
        0.15, gt=0, le=10, description="PSI below which the confidence and class mix count as back"
    )
    uncertain_alert_pp: float = Field(
        15.0,
        gt=0,
        le=100,
        description="Rise of the uncertain share, in percentage points, that starts an episode",
    )
    cusum_slack_sigma: float = Field(
        0.5, ge=0, le=10, description="CUSUM slack k, in reference standard deviations"
    )
    cusum_threshold_sigma: float = Field(
        12.0,
        gt=0,
        le=1000,
        description="CUSUM decision interval h, in reference standard "
        "deviations; higher means fewer false alarms and a longer delay",
    )
    recover_sigma: float = Field(
        0.5,
        gt=0,
        le=10,
        description="An image metric whose recent mean is within this many "
        "reference standard deviations counts as back",
    )
    recovery_frames: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="Consecutive frames with every metric back that end an episode",
    )

    @model_validator(mode="after")
    def _check_hysteresis(self) -> DriftConfig:
        if self.psi_recover >= self.psi_alert:
            raise ValueError(
                f"drift.psi_recover ({self.psi_recover}) must be below drift.psi_alert "
                f"({self.psi_alert}), or one episode would start and end on the same frame"
            )
        return self


# --- Root -----------------------------------------------------------------------------------------


class PlantConfig(Section):
    plant: str = Field("demo-plant", description="Plant name written into every verdict")
    plant_timezone: str = Field(
        "UTC",
        description="IANA time zone of the plant, e.g. 'Europe/Berlin'; daily rollups start at "
        "its local midnight",
    )
    kafka: KafkaConfig = KafkaConfig()
    database: DatabaseConfig = DatabaseConfig()
    model: ModelConfig
    stations: tuple[StationConfig, ...] = Field(..., min_length=1)
    cameras: tuple[CameraConfig, ...] = ()
    plcs: tuple[PlcConfig, ...] = ()
    worker: WorkerConfig = WorkerConfig()
    inference: InferenceConfig = InferenceConfig()
    archive: ArchiveConfig = ArchiveConfig()
    simulators: SimulatorConfig = SimulatorConfig()
    drift: DriftConfig = DriftConfig()

    @field_validator("stations", "cameras", "plcs")
    @classmethod
    def _check_unique_ids(cls, items: tuple[BaseModel, ...]) -> tuple[BaseModel, ...]:
        seen: set[str] = set()
        for item in items:
            key = getattr(item, "id", None) or getattr(item, "name", "")
            if key in seen:
                raise ValueError(f"'{key}' is defined twice")
            seen.add(key)
        return items

    @field_validator("plant_timezone")
    @classmethod
    def _check_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"plant_timezone '{name}' is not a known IANA time zone; "
                "use a name such as 'Europe/Berlin' or 'UTC'"
            ) from exc
        return name

    @model_validator(mode="after")
    def _check_references(self) -> PlantConfig:
        station_ids = {station.id for station in self.stations}
        for camera in self.cameras:
            if camera.station not in station_ids:
                raise ValueError(
                    f"camera '{camera.id}' names station '{camera.station}', "
                    f"which is not in stations {sorted(station_ids)}"
                )
        plcs = {plc.name: plc for plc in self.plcs}
        for station in self.stations:
            for index, output in enumerate(station.outputs):
                where = f"station '{station.id}' outputs[{index}]"
                plc = plcs.get(output.plc)
                if plc is None:
                    raise ValueError(
                        f"{where} names PLC '{output.plc}', which is not in plcs {sorted(plcs)}"
                    )
                if plc.type == "modbus" and (not output.points or output.nodes):
                    raise ValueError(
                        f"{where}: Modbus PLC '{plc.name}' takes 'points', not 'nodes'"
                    )
                if plc.type == "opcua" and (not output.nodes or output.points):
                    raise ValueError(
                        f"{where}: OPC UA PLC '{plc.name}' takes 'nodes', not 'points'"
                    )
        return self

    @model_validator(mode="after")
    def _check_plc_maps(self) -> PlantConfig:
        # Imported here because the PLC package imports this module.
        from defectline.connectors.plc.addressing import check_station_maps

        plcs = {plc.name: plc for plc in self.plcs}
        for station in self.stations:
            check_station_maps(station, plcs)
        return self

    def station(self, station_id: str) -> StationConfig:
        for station in self.stations:
            if station.id == station_id:
                return station
        raise KeyError(station_id)

    def camera(self, camera_id: str) -> CameraConfig:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(camera_id)

    def plc(self, name: str) -> PlcConfig:
        for plc in self.plcs:
            if plc.name == name:
                return plc
        raise KeyError(name)
