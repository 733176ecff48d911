"""Runs a simulated PLC for every entry of `plcs`, each at its own host and port or endpoint."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from defectline.config.models import ModbusPlcConfig, PlantConfig, PlcOutput
from defectline.connectors.plc.sim.modbus_server import ModbusSimulator
from defectline.connectors.plc.sim.opcua_server import OpcUaSimulator

logger = logging.getLogger(__name__)

Simulator = ModbusSimulator | OpcUaSimulator


class SimulatorSet:
    """The simulators of one plant, keyed by PLC name, with their write histories."""

    def __init__(self, config: PlantConfig) -> None:
        self.simulators: dict[str, Simulator] = {}
        for plc in config.plcs:
            stations = _stations_of(config, plc.name)
            handshakes = {
                station.id: station.handshake
                for station in config.stations
                if station.handshake is not None and station.handshake.plc == plc.name
            }
            if isinstance(plc, ModbusPlcConfig):
                self.simulators[plc.name] = ModbusSimulator(plc, stations, handshakes=handshakes)
            else:
                self.simulators[plc.name] = OpcUaSimulator(plc, stations, handshakes=handshakes)
        self._started: list[Simulator] = []

    def write_history(self, plc: str, station: str) -> list[int]:
        """Return the sequence numbers `station` wrote to `plc`, one entry per write, in order."""
        simulator = self.simulators.get(plc)
        if simulator is None:
            raise KeyError(f"no simulated PLC named '{plc}'; simulated: {sorted(self.simulators)}")
        return list(simulator.history.get(station, []))

    def histories(self) -> dict[str, dict[str, list[int]]]:
        """Return every write history as {plc: {station: [sequence, ...]}}."""
        return {
            name: {station: list(values) for station, values in simulator.history.items()}
            for name, simulator in self.simulators.items()
        }

    async def start(self) -> None:
        """Start every simulator; on failure stop the ones already started and re-raise."""
        try:
            for simulator in self.simulators.values():
                await simulator.start()
                self._started.append(simulator)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the started simulators in reverse order of starting."""
        while self._started:
            await self._started.pop().stop()

    async def __aenter__(self) -> SimulatorSet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def run_simulators(
    config: PlantConfig, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> SimulatorSet:
    """Serve every configured PLC until `stop` is set; return the set with its write histories.

    `ready` is set once every simulator listens.
    """
    simulators = SimulatorSet(config)
    async with simulators:
        if ready is not None:
            ready.set()
        logger.info("plc simulators ready plcs=%s", ",".join(simulators.simulators))
        await stop.wait()
    return simulators


def _stations_of(config: PlantConfig, plc_name: str) -> dict[str, list[PlcOutput]]:
    return {
        station.id: [output for output in station.outputs if output.plc == plc_name]
        for station in config.stations
        if any(output.plc == plc_name for output in station.outputs)
    }
