"""Collision-free aiogram-dialog intent ids.

aiogram-dialog 2.x makes an intent id from the current second plus one of 100 random values,
so two dialogs a chat starts within one second share an id once in a hundred times, and the
older dialog's buttons then fail with UnknownIntent («Эта кнопка устарела»). bench/updates.py
found it at a few journeys per resident per second, and it also explains a rare flaky flow
test. The library has no setting for it; `Stack.push` looks `new_id` up in its module at call
time, so that function is replaced with one drawing 48 random bits (9 characters: still far
inside Telegram's 64-byte callback_data)."""

from __future__ import annotations

import secrets

from aiogram_dialog.api.entities import stack


def _random_id() -> str:
    return stack.id_to_str(secrets.randbits(48) or 1)


def install() -> None:
    stack.new_id = _random_id
