"""Simulated OPC UA PLC: an asyncua server with one writable variable per configured node id."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackService, CallbackType, ServerItemCallback
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from defectline.config.models import (
    HandshakeConfig,
    OpcUaNode,
    OpcUaPlcConfig,
    PlcOutput,
    VerdictField,
)
from defectline.connectors.plc.errors import PlcError

logger = logging.getLogger(__name__)

NAMESPACE_URI = "urn:defectline:plc-simulator"
NAMESPACE_INDEX = 2

# Data type of each verdict field's variable, and the value it starts with.
FIELD_TYPES: dict[VerdictField, tuple[ua.VariantType, Any]] = {
    VerdictField.REJECT: (ua.VariantType.Boolean, False),
    VerdictField.CLASS_CODE: (ua.VariantType.UInt16, 0),
    VerdictField.CONFIDENCE: (ua.VariantType.Double, 0.0),
    VerdictField.SEQUENCE: (ua.VariantType.UInt32, 0),
    VerdictField.FRAME_SEQUENCE: (ua.VariantType.UInt32, 0),
    VerdictField.UNCERTAIN: (ua.VariantType.Boolean, False),
    VerdictField.PART_ID: (ua.VariantType.UInt32, 0),
    VerdictField.RESULT_VALID: (ua.VariantType.Boolean, False),
    VerdictField.RESULT_SEQUENCE: (ua.VariantType.UInt32, 0),
    VerdictField.HEARTBEAT: (ua.VariantType.UInt32, 0),
    VerdictField.TRIGGER: (ua.VariantType.UInt32, 0),
    VerdictField.ACK: (ua.VariantType.Boolean, False),
}

_INITIAL_VALUES: dict[ua.VariantType, Any] = {
    ua.VariantType.Boolean: False,
    ua.VariantType.String: "",
    ua.VariantType.Float: 0.0,
    ua.VariantType.Double: 0.0,
}


class _ConfiguredUserManager(UserManager):
    """Accepts only the configured username and password, like a PLC with user auth enabled."""

    def __init__(self, username: str, password: str | None) -> None:
        self._username = username
        self._password = password

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username == self._username and password == self._password:
            return User(role=UserRole.User, name=username)
        return None


class OpcUaSimulator:
    """An OPC UA server at the PLC's endpoint with a variable for every node id of `stations`.

    `stations` maps a station id to its outputs for this PLC. Node ids must be in namespace 2,
    the first namespace a server registers after its own. `data_types` overrides the data type
    of a node id, for tests of type conversion. Each successful write of a station's `sequence`
    node appends the value to `history[station]`. Nodes given by browse path are created as
    variables below folders named after the path's elements. `handshakes` adds the nodes of
    each station's handshake with this PLC; `set_value` and `get_value` act as the PLC program.

    With `certificate_path` and `private_key_path` the server offers Basic256Sha256 Sign and
    SignAndEncrypt endpoints instead of None.
    """

    def __init__(
        self,
        plc: OpcUaPlcConfig,
        stations: Mapping[str, Sequence[PlcOutput]],
        *,
        data_types: Mapping[str, ua.VariantType] | None = None,
        handshakes: Mapping[str, HandshakeConfig] | None = None,
        certificate_path: Path | None = None,
        private_key_path: Path | None = None,
    ) -> None:
        self.plc = plc
        self.history: dict[str, list[int]] = {station: [] for station in stations}
        self.requests: list[list[ua.WriteValue]] = []
        self._nodes: dict[str, tuple[str, OpcUaNode]] = {
            node.target: (station, node)
            for station, outputs in stations.items()
            for output in outputs
            if output.plc == plc.name
            for node in output.nodes
        }
        for station, handshake in (handshakes or {}).items():
            if handshake.plc == plc.name:
                self._nodes.update({node.target: (station, node) for node in handshake.nodes})
        self._data_types = dict(data_types or {})
        self._certificate_path = certificate_path
        self._private_key_path = private_key_path
        self._variables: dict[str, Any] = {}
        self._written_ids: dict[str, str] = {}
        self._server: Server | None = None

    @property
    def endpoint(self) -> str:
        return self.plc.endpoint

    async def start(self) -> None:
        """Create the address space and listen at the endpoint."""
        user_manager = None
        if self.plc.username is not None:
            password = self.plc.password.get_secret_value() if self.plc.password else None
            user_manager = _ConfiguredUserManager(self.plc.username, password)

        server = Server(user_manager=user_manager)
        await server.init()
        server.set_endpoint(self.plc.endpoint)
        server.set_server_name(f"defectline simulated PLC {self.plc.name}")
        if self._certificate_path is not None and self._private_key_path is not None:
            await server.load_certificate(str(self._certificate_path))
            await server.load_private_key(str(self._private_key_path))
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        index = await server.register_namespace(NAMESPACE_URI)
        if index != NAMESPACE_INDEX:
            raise PlcError(f"simulator namespace got index {index}, expected {NAMESPACE_INDEX}")

        await self._add_variables(server)
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        try:
            await server.start()
        except OSError as exc:
            raise PlcError(
                f"simulated OPC UA PLC '{self.plc.name}' cannot listen at {self.plc.endpoint}: "
                f"{exc}; free the port or change the endpoint in plcs"
            ) from exc
        self._server = server
        logger.info(
            "opcua simulator started plc=%s endpoint=%s nodes=%d",
            self.plc.name,
            self.plc.endpoint,
            len(self._nodes),
        )

    def clear_history(self) -> None:
        """Forget the recorded requests and sequence values; the variables keep their values."""
        self.requests.clear()
        for values in self.history.values():
            values.clear()

    async def stop(self) -> None:
        """Stop listening and close every session."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            logger.info("opcua simulator stopped plc=%s", self.plc.name)

    async def set_value(self, target: str, value: Any) -> None:
        """Set the variable of a configured node id or browse path, as the PLC program would."""
        variable = self._variable(target)
        variant_type = await variable.read_data_type_as_variant_type()
        await variable.write_value(ua.Variant(value, variant_type))

    async def get_value(self, target: str) -> Any:
        """Return the current value of a configured node id or browse path."""
        return await self._variable(target).read_value()

    def _variable(self, target: str) -> Any:
        variable = self._variables.get(target)
        if variable is None:
            raise PlcError(f"simulated PLC '{self.plc.name}' has no node '{target}'")
        return variable

    async def _add_variables(self, server: Server) -> None:
        for target, (_station, node) in self._nodes.items():
            variant_type, initial = FIELD_TYPES[node.field]
            if target in self._data_types:
                variant_type = self._data_types[target]
                initial = _INITIAL_VALUES.get(variant_type, 0)
            if node.node_id is not None:
                variable = await self._add_by_node_id(server, node.node_id, variant_type, initial)
            else:
                variable = await self._add_by_path(
                    server, node.browse_path or "", variant_type, initial
                )
            await variable.set_writable()
            self._variables[target] = variable
            self._written_ids[variable.nodeid.to_string()] = target

    async def _add_by_node_id(
        self, server: Server, node_id: str, variant_type: ua.VariantType, initial: Any
    ) -> Any:
        parsed = ua.NodeId.from_string(node_id)
        if parsed.NamespaceIndex != NAMESPACE_INDEX:
            raise PlcError(
                f"node id '{node_id}' of PLC '{self.plc.name}' is in namespace "
                f"{parsed.NamespaceIndex}; the simulator serves namespace {NAMESPACE_INDEX}, "
                f"so write it as 'ns={NAMESPACE_INDEX};s=...'"
            )
        browse_name = ua.QualifiedName(str(parsed.Identifier), NAMESPACE_INDEX)
        return await server.nodes.objects.add_variable(
            parsed, browse_name, ua.Variant(initial, variant_type), varianttype=variant_type
        )

    async def _add_by_path(
        self, server: Server, path: str, variant_type: ua.VariantType, initial: Any
    ) -> Any:
        """Create folders for every element of `path` but the last, then the variable."""
        parent = server.nodes.objects
        *folders, leaf = [name.partition(":")[2] for name in path.strip("/").split("/")]
        for name in folders:
            try:
                parent = await parent.get_child(f"{NAMESPACE_INDEX}:{name}")
            except ua.UaStatusCodeError:
                parent = await parent.add_folder(NAMESPACE_INDEX, name)
        return await parent.add_variable(
            NAMESPACE_INDEX, leaf, ua.Variant(initial, variant_type), varianttype=variant_type
        )

    async def _on_write(self, event: ServerItemCallback, _dispatcher: CallbackService) -> None:
        """Log each written node and record sequence values of successful writes."""
        if not event.is_external:
            return  # the server's own updates, such as its ServerStatus node
        statuses = event.response_params or []
        self.requests.append(list(event.request_params.NodesToWrite))
        for item, status in zip(event.request_params.NodesToWrite, statuses, strict=False):
            node_id = item.NodeId.to_string()
            value = item.Value.Value.Value if item.Value and item.Value.Value else None
            logger.debug(
                "opcua write received plc=%s node=%s value=%r status=%s",
                self.plc.name,
                node_id,
                value,
                status.name,
            )
            target = self._written_ids.get(node_id)
            if target is None or not status.is_good():
                continue
            station, node = self._nodes[target]
            if node.field is VerdictField.SEQUENCE and value is not None:
                self.history[station].append(int(value))
