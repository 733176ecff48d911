"""OPC UA writer: verdict values to server variables through an asyncua client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import partial

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.uaerrors import UaError

from defectline.config.models import OpcUaNode, OpcUaPlcConfig, PlcOutput, VerdictField
from defectline.connectors.plc.base import (
    WRITE_RANKS,
    InputSubscription,
    PlcWriter,
    ReconnectPolicy,
    Value,
    register_writer,
)
from defectline.connectors.plc.errors import (
    PlcCodecError,
    PlcConnectError,
    PlcConnectionLostError,
    PlcNotConnectedError,
    PlcValueError,
    PlcWriteRejectedError,
)
from defectline.connectors.plc.opcua_subscription import OpcUaInputSubscription
from defectline.connectors.plc.variants import to_variant, variant_type_of

logger = logging.getLogger(__name__)

SECURITY_POLICIES = {"Basic256Sha256": SecurityPolicyBasic256Sha256}


def new_client(config: OpcUaPlcConfig) -> Client:
    """Build an asyncua client with the configured request timeout and user, if any.

    Security is applied by `apply_security`, which needs a network round trip when no server
    certificate is configured, so it runs inside the connect timeout.
    """
    client = Client(config.endpoint, timeout=config.timeout_ms / 1000)
    client.application_uri = config.application_uri
    if config.username is not None:
        client.set_user(config.username)
    if config.password is not None:
        client.set_password(config.password.get_secret_value())
    return client


async def apply_security(client: Client, config: OpcUaPlcConfig) -> None:
    """Set the configured security policy, mode and certificates on `client` before connect.

    Without `server_certificate_path` the server certificate is taken from the endpoint list
    the server returns over an unsecured channel (OPC UA Part 4, GetEndpoints).
    """
    if config.security_policy == "None":
        return
    if config.certificate_path is None or config.private_key_path is None:
        raise PlcCodecError(f"PLC '{config.name}' lacks certificate_path or private_key_path")

    server_certificate = config.server_certificate_path
    await client.set_security(
        SECURITY_POLICIES[config.security_policy],
        certificate=str(config.certificate_path),
        private_key=str(config.private_key_path),
        server_certificate=None if server_certificate is None else str(server_certificate),
        mode=getattr(ua.MessageSecurityMode, config.security_mode),
    )


def parse_browse_path(path: str) -> list[str]:
    """Split '2:Line1/2:Station1/2:Reject' into browse names, raising PlcCodecError if invalid."""
    names = [name.strip() for name in path.strip("/").split("/")]
    for name in names:
        namespace, _, text = name.partition(":")
        if not namespace.isdigit() or not text:
            raise PlcCodecError(
                f"browse path '{path}' has the element '{name}'; write each element as "
                "'namespace:BrowseName', e.g. '2:Line1/2:Station1/2:Reject'"
            )
    return names


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

    Browse paths are resolved to NodeIds and the DataType of every node named in the outputs
    given at construction is read at connect, with each fresh client; nodes seen first in a
    write or read are resolved then. Values carry no source or server timestamp and no status
    code, because some servers reject writes that set them. The `sequence`, `result_sequence`
    and `result_valid` nodes are written last within the call, in that order.
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
        self._node_ids: dict[str, ua.NodeId] = {}
        self._types: dict[str, ua.VariantType] = {}
        self._lost_tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return self._opcua.endpoint

    async def subscribe(self, output: PlcOutput, interval_ms: int) -> InputSubscription:
        """Subscribe to data changes of the nodes of `output` on the current session."""
        nodes = list(output.nodes)
        targets = ", ".join(node.target for node in nodes)
        async with self._write_lock:
            client = self._client
            if client is None or not self.is_connected:
                raise PlcNotConnectedError(self.name, self.endpoint, targets, "not connected")
            try:
                return await self._subscribe(client, nodes, targets, interval_ms)
            except PlcConnectionLostError as exc:
                self._last_error = exc.reason
                await self._lose_connection()
                raise

    async def _subscribe(
        self, client: Client, nodes: list[OpcUaNode], targets: str, interval_ms: int
    ) -> InputSubscription:
        await self._load_nodes_for_request(client, nodes)
        node_ids = {node: self._node_ids[node.target] for node in nodes}
        limit_s = self.timeout_s * 2
        try:
            async with asyncio.timeout(limit_s):
                return await OpcUaInputSubscription.create(self.name, client, node_ids, interval_ms)
        except TimeoutError as exc:
            reason = f"creating the subscription got no response within {limit_s:g} s"
            raise PlcConnectionLostError(self.name, self.endpoint, targets, reason) from exc
        except (OSError, ConnectionError) as exc:
            raise PlcConnectionLostError(self.name, self.endpoint, targets, _reason(exc)) from exc
        except UaError as exc:
            raise PlcWriteRejectedError(self.name, self.endpoint, targets, _reason(exc)) from exc

    def _is_current(self, client: object) -> bool:
        return client is not None and client is self._client

    async def _on_client_lost(self, client: Client, exc: Exception) -> None:
        """asyncua's watchdog found the session dead; drop the client outside its own task."""
        task = asyncio.create_task(
            self.connection_lost(client, _reason(exc)), name=f"opcua-lost-{self.name}"
        )
        self._lost_tasks.add(task)
        task.add_done_callback(self._lost_tasks.discard)

    async def _open(self) -> None:
        client = new_client(self._opcua)
        client.connection_lost_callback = partial(self._on_client_lost, client)
        self._client = client
        self._node_ids = {}
        self._types = {}
        try:
            await apply_security(client, self._opcua)
            await client.connect()
        except (OSError, UaError) as exc:
            raise PlcConnectError(self.name, self.endpoint, _reason(exc)) from exc

        nodes = [node for output in self._outputs for node in output.nodes]
        try:
            await self._load_nodes(client, nodes)
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
        nodes = sorted(output.nodes, key=lambda node: WRITE_RANKS.get(node.field, 0))
        targets = ", ".join(node.target for node in nodes)
        if client is None:
            raise PlcConnectionLostError(self.name, self.endpoint, targets, "client is closed")

        await self._load_nodes_for_request(client, nodes)
        data_values = [self._data_value(node, values) for node in nodes]
        node_ids = [self._node_ids[node.target] for node in nodes]

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

    async def _read(self, output: PlcOutput) -> dict[VerdictField, Value]:
        client = self._client
        nodes = list(output.nodes)
        targets = ", ".join(node.target for node in nodes)
        if client is None:
            raise PlcConnectionLostError(self.name, self.endpoint, targets, "client is closed")

        await self._load_nodes_for_request(client, nodes)
        node_ids = [self._node_ids[node.target] for node in nodes]
        try:
            async with asyncio.timeout(self.timeout_s):
                results = await client.uaclient.read_attributes(node_ids, ua.AttributeIds.Value)
        except TimeoutError as exc:
            reason = f"no response within {self._opcua.timeout_ms} ms"
            raise PlcConnectionLostError(self.name, self.endpoint, targets, reason) from exc
        except (OSError, UaError, ConnectionError) as exc:
            raise PlcConnectionLostError(self.name, self.endpoint, targets, _reason(exc)) from exc

        values: dict[VerdictField, Value] = {}
        for node, result in zip(nodes, results, strict=True):
            status = result.StatusCode
            if status is not None and not status.is_good():
                raise PlcWriteRejectedError(
                    self.name,
                    self.endpoint,
                    node.target,
                    f"the server refused the read: {status.name}",
                )
            values[node.field] = result.Value.Value if result.Value is not None else None
        return values

    def _data_value(self, node: OpcUaNode, values: Mapping[VerdictField, Value]) -> ua.DataValue:
        if node.field not in values:
            raise PlcValueError(
                self.name,
                self.endpoint,
                node.target,
                f"no value for field '{node.field.value}'; the writer received fields "
                f"{sorted(str(key) for key in values)}",
            )
        try:
            variant = to_variant(values[node.field], self._types[node.target], node.field.value)
        except PlcCodecError as exc:
            raise PlcValueError(self.name, self.endpoint, node.target, str(exc)) from exc
        return ua.DataValue(Value=variant, StatusCode=None)

    async def _load_nodes_for_request(self, client: Client, nodes: Sequence[OpcUaNode]) -> None:
        unknown = [node for node in nodes if node.target not in self._types]
        if not unknown:
            return
        targets = ", ".join(node.target for node in unknown)
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._load_nodes(client, unknown)
        except PlcCodecError as exc:
            raise PlcValueError(self.name, self.endpoint, targets, str(exc)) from exc
        except TimeoutError as exc:
            reason = (
                f"reading the node data types got no response within {self._opcua.timeout_ms} ms"
            )
            raise PlcConnectionLostError(self.name, self.endpoint, targets, reason) from exc
        except (OSError, UaError, ConnectionError) as exc:
            raise PlcConnectionLostError(self.name, self.endpoint, targets, _reason(exc)) from exc

    async def _load_nodes(self, client: Client, nodes: Sequence[OpcUaNode]) -> None:
        """Resolve browse paths, then read the DataType of every node in one request."""
        unique = list({node.target: node for node in nodes}.values())
        if not unique:
            return
        for node in unique:
            self._node_ids[node.target] = await resolve_node(client, node)

        parsed = [self._node_ids[node.target] for node in unique]
        results = await client.uaclient.read_attributes(parsed, ua.AttributeIds.DataType)
        for node, result in zip(unique, results, strict=True):
            status = result.StatusCode
            if status is not None and not status.is_good():
                raise PlcCodecError(
                    f"node '{node.target}' cannot be read: {status.name}; check that the node "
                    "exists on the server"
                )
            data_type = result.Value.Value if result.Value is not None else None
            if not isinstance(data_type, ua.NodeId):
                raise PlcCodecError(f"node '{node.target}' has no DataType; is it a variable?")
            try:
                self._types[node.target] = variant_type_of(data_type)
            except PlcCodecError as exc:
                raise PlcCodecError(f"node '{node.target}': {exc}") from exc


async def resolve_node(client: Client, node: OpcUaNode) -> ua.NodeId:
    """Return the NodeId of `node`, translating its browse path on the server if it has one."""
    if node.node_id is not None:
        return parse_node_id(node.node_id)

    names = parse_browse_path(node.browse_path or "")
    try:
        found = await client.nodes.objects.get_child(names)
    except ua.UaStatusCodeError as exc:
        raise PlcCodecError(
            f"browse path '{node.browse_path}' was not found below the Objects folder "
            f"({exc}); check each browse name and its namespace index"
        ) from exc
    return found.nodeid


def _check_results(
    writer: OpcUaWriter, nodes: Sequence[OpcUaNode], results: Sequence[ua.StatusCode]
) -> None:
    failed = [
        f"{node.target}: {status.name}"
        for node, status in zip(nodes, results, strict=True)
        if not status.is_good()
    ]
    if failed:
        raise PlcWriteRejectedError(
            writer.name,
            writer.endpoint,
            ", ".join(node.target for node in nodes),
            f"the server rejected {len(failed)} of {len(nodes)} node(s): {'; '.join(failed)}",
        )


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
