"""The committed codes.json is exactly what the protocol registry generates."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.dashboard import gen_codes
from bridge.protocol import codes


def test_committed_codes_json_matches_registry() -> None:
    assert gen_codes.CODES_PATH.read_text(encoding="utf-8") == gen_codes.render()


def test_codes_json_reconnect_flags_follow_is_reconnect() -> None:
    data = json.loads(gen_codes.render())
    for code, entry in data["closeCodes"].items():
        assert entry["reconnect"] is codes.is_reconnect(int(code))
    assert set(data["errors"]) == set(codes.ERRORS)


def test_check_mode_flags_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "codes.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert gen_codes.main(["--check", "--output", str(stale)]) == 1
    assert gen_codes.main(["--output", str(stale)]) == 0
    assert gen_codes.main(["--check", "--output", str(stale)]) == 0
