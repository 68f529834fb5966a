from __future__ import annotations

from pathlib import Path

import pytest

from bridge.simulator import EAState, SimAccount, load_state, save_state, state_path


def test_state_fresh_when_missing(tmp_path: Path) -> None:
    state = load_state(state_path(tmp_path, "50123"), "50123", balance=500.0)
    assert state.account.balance == 500.0 and state.outbox == [] and state.offset("signals:a") == (None, None)


def test_state_round_trips_atomically(tmp_path: Path) -> None:
    path = state_path(tmp_path, "50123")
    state = EAState(SimAccount("50123"))
    state.offsets["signals:alpha"] = [7, "ep"]
    state.remember("s1", "executed")
    state.outbox.append({"id": "e1"})
    state.paused_strategies.append("beta")
    save_state(path, state)
    assert not path.with_name(path.name + ".tmp").exists()
    loaded = load_state(path, "50123")
    assert loaded.to_dict() == state.to_dict()
    assert loaded.offset("signals:alpha") == (7, "ep")
    assert loaded.is_paused("beta") and not loaded.is_paused("alpha")


def test_state_refuses_another_accounts_file(tmp_path: Path) -> None:
    path = state_path(tmp_path, "50123")
    save_state(path, EAState(SimAccount("50123")))
    with pytest.raises(ValueError):
        load_state(path, "99999")
