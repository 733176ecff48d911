"""OPC UA input subscription: data change notifications of handshake nodes, in arrival order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.ua.uaerrors import UaError

from defectline.config.models import OpcUaNode, VerdictField
from defectline.connectors.plc.base import InputSubscription, Value
from defectline.connectors.plc.errors import PlcError

logger = logging.getLogger(__name__)

# Notifications the server keeps per node between two publish responses, so a trigger that
# rises and falls within one publishing interval arrives as two changes, not as the last one.
MONITORED_QUEUE_SIZE = 32


class OpcUaInputSubscription(InputSubscription):
    """One asyncua subscription with a monitored item per node, read as a queue of changes.

    Notifications are read in iterator mode, so the caller sees them in the order of the
    server's publish responses, and within one response in the server's order.
    """

    def __init__(
        self, plc: str, subscription: Subscription, fields: Mapping[ua.NodeId, VerdictField]
    ) -> None:
        self._plc = plc
        self._subscription = subscription
        self._fields = dict(fields)

    @classmethod
    async def create(
        cls,
        plc: str,
        client: Client,
        nodes: Mapping[OpcUaNode, ua.NodeId],
        interval_ms: int,
    ) -> OpcUaInputSubscription:
        """Create the subscription and its monitored items; raises UaError or OSError."""
        subscription = await client.create_subscription(float(interval_ms), handler=None)
        items = [(node, client.get_node(node_id)) for node, node_id in nodes.items()]
        handles = await subscription.subscribe_data_change(
            [item for _node, item in items],
            queuesize=MONITORED_QUEUE_SIZE,
            sampling_interval=float(interval_ms),
        )
        failed = [
            f"{node.target}: {handle.name}"
            for (node, _item), handle in zip(items, handles, strict=True)
            if isinstance(handle, ua.StatusCode)
        ]
        if failed:
            await _delete_quietly(subscription)
            raise UaError(f"the server rejected monitoring of {'; '.join(failed)}")
        logger.info(
            "opcua subscription created plc=%s nodes=%d interval_ms=%d",
            plc,
            len(nodes),
            interval_ms,
        )
        return cls(plc, subscription, {item.nodeid: node.field for node, item in items})

    async def next_changes(self, timeout_s: float) -> list[tuple[VerdictField, Value | None]]:
        try:
            event = await self._subscription.next_event(timeout_s)
        except StopAsyncIteration as exc:
            raise PlcError(f"the OPC UA subscription of PLC '{self._plc}' has ended") from exc
        if isinstance(event, DataChangeEvent):
            field = self._fields.get(event.node.nodeid)
            if field is not None:
                return [(field, event.value)]
        elif isinstance(event, StatusChangeEvent):
            logger.warning(
                "opcua subscription status changed plc=%s status=%s",
                self._plc,
                event.notification.Status,
            )
        return []

    async def close(self) -> None:
        await _delete_quietly(self._subscription)


async def _delete_quietly(subscription: Subscription) -> None:
    try:
        await asyncio.wait_for(subscription.delete(), timeout=1.0)
    except (TimeoutError, OSError, UaError, ConnectionError) as exc:
        logger.debug("opcua subscription not deleted error=%s", exc)
