"""What a simulated EA keeps across its own restarts, in one JSON file written atomically.

One file holds everything that must change together: the account (balance, positions, tickets), the
ids of the signals already handled, the last processed offset and epoch per channel, the pause flags
and the outbox of trade events the hub has not confirmed yet. A signal is executed, its events are
queued and its offset is advanced in one write (temporary file, fsync, rename, fsync of the
directory), so a crash leaves either all of it or none of it: nothing runs twice, nothing is lost.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.simulator.account import SimAccount

__all__ = ["MAX_REMEMBERED_SIGNALS", "EAState", "load_state", "save_state", "state_path"]

#: Signal ids remembered for de-duplication (oldest forgotten first); far beyond any replay window.
MAX_REMEMBERED_SIGNALS = 100_000
VERSION = 1


@dataclass
class EAState:
    account: SimAccount
    #: channel -> [offset, epoch] of the last message processed.
    offsets: dict[str, list[Any]] = field(default_factory=dict)
    #: signal id -> outcome ("executed" or "rejected"), insertion-ordered.
    signals: dict[str, str] = field(default_factory=dict)
    paused_account: bool = False
    paused_strategies: list[str] = field(default_factory=list)
    #: Trade events not yet confirmed by the hub, in the order they happened.
    outbox: list[dict[str, Any]] = field(default_factory=list)

    def offset(self, channel: str) -> tuple[int | None, str | None]:
        entry = self.offsets.get(channel)
        if not entry:
            return None, None
        return int(entry[0]), entry[1] if isinstance(entry[1], str) else None

    def remember(self, signal_id: str, outcome: str) -> None:
        self.signals[signal_id] = outcome
        while len(self.signals) > MAX_REMEMBERED_SIGNALS:
            del self.signals[next(iter(self.signals))]

    def is_paused(self, strategy: str) -> bool:
        return self.paused_account or strategy in self.paused_strategies

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "account": self.account.to_dict(),
            "offsets": self.offsets,
            "signals": self.signals,
            "pausedAccount": self.paused_account,
            "pausedStrategies": self.paused_strategies,
            "outbox": self.outbox,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EAState:
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r}")
        return cls(
            account=SimAccount.from_dict(data["account"]),
            offsets=dict(data.get("offsets", {})),
            signals=dict(data.get("signals", {})),
            paused_account=bool(data.get("pausedAccount", False)),
            paused_strategies=list(data.get("pausedStrategies", [])),
            outbox=list(data.get("outbox", [])),
        )


def state_path(state_dir: Path, login: str) -> Path:
    return state_dir / f"ea-{login}.json"


def load_state(path: Path, login: str, *, balance: float = 10_000.0) -> EAState:
    """The saved state, or a fresh account when there is none yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return EAState(SimAccount(login, balance=balance))
    state = EAState.from_dict(json.loads(raw))
    if state.account.login != login:
        raise ValueError(f"{path} belongs to account {state.account.login}, not {login}")
    return state


def save_state(path: Path, state: EAState) -> None:
    """Replace the file atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(state.to_dict(), separators=(",", ":")).encode()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
