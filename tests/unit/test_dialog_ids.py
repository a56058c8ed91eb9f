"""Dialog intent ids do not collide within a second (see bot/dialog_ids.py)."""

from __future__ import annotations

from aiogram_dialog.api.entities import stack

import bot.app  # noqa: F401  (installs the ids)


def test_many_ids_in_one_second_are_all_different() -> None:
    ids = {stack.new_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert max(len(i) for i in ids) <= 9  # short enough for callback_data
