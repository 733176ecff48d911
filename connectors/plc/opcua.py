"""OPC UA writer: verdict values to server variables through an asyncua client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence

from asyncua import Client, ua
from asyncua.ua.uaerrors import UaError

from defectline.config.models import OpcUaNode, OpcUaPlcConfig, PlcOutput, VerdictField
from defectline.connectors.plc.base import PlcWriter, ReconnectPolicy, Value, register_writer
from defectline.connectors.plc.errors import (
    PlcCodecError,
    PlcConnectError,
    PlcConnectionLostError,
    PlcValueError,
    PlcWriteRejectedError,
)
from defectline.connectors.plc.variants import to_variant, variant_type_of

logger = logging.getLogger(__name__)


def new_client(config: OpcUaPlcConfig) -> Client:
    """Build an asyncua client with the configured request timeout and user, if any.

    NOTE: only the None security policy is supported; signed or encrypted channels need
    certificate settings that the configuration does not have yet.
    """
    client = Client(config.endpoint, timeout=config.timeout_ms / 1000)
    if config.username is not None:
        client.set_user(config.username)
    if config.password is not None:
        client.set_password(config.password.get_secret_value())
    return client


def parse_node_id(node_id: str) -> ua.NodeId:
    """Parse a NodeId string such as 'ns=2;s=Station1.Reject', raising PlcCodecError if invalid."""
    try:
        return ua.NodeId.from_string(node_id)
    except (UaError, ValueError) as exc:
        raise PlcCodecError(
            f"node id '{node_id}' is invalid ({exc}); write it like 'ns=2;s=Station1.Reject'"
        ) from exc


@register_writer
class OpcUaWriter(PlcWriter):
    """Writes the nodes of an output in one Write service call, with each node's own data type.

    The DataType of every node named in the outputs given at construction is read at connect;
    nodes seen first in a write are read then. Values carry no source or server timestamp and no
    status code, because some servers reject writes that set them. The `sequence` node is written
    last within the call.
    """

    type_key = "opcua"

    def __init__(
        self,
        config: OpcUaPlcConfig,
        outputs: Iterable[PlcOutput] = (),
        *,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        super().__init__(config, outputs, reconnect=reconnect)
        self._opcua = config
        self._client: Client | None = None
        self._types: dict[str, ua.VariantType] = {}

    @property
    def endpoint(self) -> str:
        return self._opcua.endpoint

    async def _open(self) -> None:
        client = new_client(self._opcua)
        self._client = client
        self._types = {}
        try:
            await client.connect()
        except (OSError, UaError) as exc:
            raise PlcConnectError(self.name, self.endpoint, _reason(exc)) from exc

        node_ids = [node.node_id for output in self._outputs for node in output.nodes]
        try:
            await self._load_types(client, node_ids)
        except PlcCodecError as exc:
            raise PlcConnectError(self.name, self.endpoint, str(exc)) from exc
        except (OSError, UaError) as exc:
            raise PlcConnectError(self.name, self.endpoint, _reason(exc)) from exc

    async def _discard_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.disconnect()
        except (OSError, UaError, ConnectionError) as exc:
            logger.debug("opcua disconnect failed plc=%s error=%s", self.name, exc)

    async def _write(self, output: PlcOutput, values: Mapping[VerdictField, Value]) -> None:
        client = self._client
        nodes = sorted(output.nodes, key=lambda node: node.field is VerdictField.SEQUENCE)
        targets = ", ".join(node.node_id for node in nodes)
        if client is None:
            raise PlcConnectionLostError(self.name, self.endpoint, targets, "client is closed")

        unknown = [node.node_id for node in nodes if node.node_id not in self._types]
        if unknown:
            await self._load_types_for_write(client, unknown)
        data_values = [self._data_value(node, values) for node in nodes]
        node_ids = [parse_node_id(node.node_id) for node in nodes]

        try:
            async with asyncio.timeout(self.timeout_s):
                results = await client.uaclient.write_attributes(
                    node_ids, data_values, ua.AttributeIds.Value
                )
        except TimeoutError as exc:
            reason = f"no response within {self._opcua.timeout_ms} ms"
            raise PlcConnectionLostError(self.name, self.endpoint, targets, reason) from exc
        except (OSError, UaError, ConnectionError) as exc:
            raise PlcConnectionLostError(self.name, self.endpoint, targets, _reason(exc)) from exc

        _check_results(self, nodes, results)
        logger.debug("opcua write plc=%s nodes=%s", self.name, targets)

    def _data_value(self, node: OpcUaNode, values: Mapping[VerdictField, Value]) -> ua.DataValue:
        if node.field not in values:
            raise PlcValueError(
                self.name,
                self.endpoint,
                node.node_id,
                f"no value for field '{node.field.value}'; the writer received fields "
                f"{sorted(str(key) for key in values)}",
            )
        try:
            variant = to_variant(values[node.field], self._types[node.node_id], node.field.value)
        except PlcCodecError as exc:
            raise PlcValueError(self.name, self.endpoint, node.node_id, str(exc)) from exc
        return ua.DataValue(Value=variant, StatusCode=None)

    async def _load_types_for_write(self, client: Client, node_ids: list[str]) -> None:
        targets = ", ".join(node_ids)
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._load_types(client, node_ids)
        except PlcCodecError as exc:
            raise PlcValueError(self.name, self.endpoint, targets, str(exc)) from exc
        except TimeoutError as exc:
            reason = (
                f"reading the node data types got no response within {self._opcua.timeout_ms} ms"
            )
            raise PlcConnectionLostError(self.name, self.endpoint, targets, reason) from exc
        except (OSError, UaError, ConnectionError) as exc:
            raise PlcConnectionLostError(self.name, self.endpoint, targets, _reason(exc)) from exc

    async def _load_types(self, client: Client, node_ids: Sequence[str]) -> None:
        """Read the DataType attribute of `node_ids` in one request and store their VariantTypes."""
        unique_ids = list(dict.fromkeys(node_ids))
        if not unique_ids:
            return
        parsed = [parse_node_id(node_id) for node_id in unique_ids]
        results = await client.uaclient.read_attributes(parsed, ua.AttributeIds.DataType)

        for node_id, result in zip(unique_ids, results, strict=True):
            status = result.StatusCode
            if status is not None and not status.is_good():
                raise PlcCodecError(
                    f"node '{node_id}' cannot be read: {status.name}; check that the node id "
                    "exists on the server"
                )
            data_type = result.Value.Value if result.Value is not None else None
            if not isinstance(data_type, ua.NodeId):
                raise PlcCodecError(f"node '{node_id}' has no DataType; is it a variable?")
            try:
                self._types[node_id] = variant_type_of(data_type)
            except PlcCodecError as exc:
                raise PlcCodecError(f"node '{node_id}': {exc}") from exc


def _check_results(
    writer: OpcUaWriter, nodes: Sequence[OpcUaNode], results: Sequence[ua.StatusCode]
) -> None:
    failed = [
        f"{node.node_id}: {status.name}"
        for node, status in zip(nodes, results, strict=True)
        if not status.is_good()
    ]
    if failed:
        raise PlcWriteRejectedError(
            writer.name,
            writer.endpoint,
            ", ".join(node.node_id for node in nodes),
            f"the server rejected {len(failed)} of {len(nodes)} node(s): {'; '.join(failed)}",
        )


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
