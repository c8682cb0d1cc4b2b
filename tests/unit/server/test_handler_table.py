"""The verb -> handler table: built explicitly from each handler module's own table, nothing registered
by import, every deferred command of the protocol table answered, no verb claimed twice."""

from __future__ import annotations

import pytest

from s3dsi.protocol.commands import COMMANDS
from s3dsi.protocol.session import Deferred
from s3dsi.server.handlers import AREAS, handler_table
from s3dsi.server.session import Session


def test_every_io_command_has_exactly_one_handler() -> None:
    table = handler_table()
    assert set(table) == {verb for verb, spec in COMMANDS.items() if spec.kind == "io"}
    claimed = [verb for area in AREAS for verb in area.HANDLERS]
    assert len(claimed) == len(set(claimed)) == len(table)


def test_each_area_owns_its_verbs() -> None:
    by_area = {area.__name__.rsplit(".", 1)[1]: set(area.HANDLERS) for area in AREAS}
    assert by_area["login"] == {"PASS"}
    assert by_area["transfers"] == {"RETR", "ERET", "STOR", "APPE", "ESTO"}
    assert {"MKD", "RMD", "DELE", "RNFR", "RNTO"} <= by_area["namespace"]


def test_a_verb_claimed_twice_is_refused() -> None:
    async def other(session: Session, cmd: Deferred) -> None:
        raise AssertionError

    with pytest.raises(ValueError, match="two handlers for PASS"):
        handler_table(*(area.HANDLERS for area in AREAS), {"PASS": other})


def test_a_table_is_a_value_not_a_registry() -> None:
    first = handler_table()
    first.clear()
    assert handler_table()  # building one table does not change what the next one holds
