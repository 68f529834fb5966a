"""EA simulator: a Python stand-in for the MQL5 EA, speaking protocol v1 through :mod:`bridge.client`."""

from __future__ import annotations

from bridge.simulator.account import Position, RiskGuards, SimAccount, event_uuid, signal_tag
from bridge.simulator.ea import SimulatedEA
from bridge.simulator.state import EAState, load_state, save_state, state_path

__all__ = [
    "EAState",
    "Position",
    "RiskGuards",
    "SimAccount",
    "SimulatedEA",
    "event_uuid",
    "load_state",
    "save_state",
    "signal_tag",
    "state_path",
]
