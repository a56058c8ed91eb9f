"""aiogram's Bot API types and methods are built on first use (`bot.lazy_models`), and one built
that way is the same: it parses and serialises what an eagerly built one does, every type can be
built, and the hook is gone once aiogram is in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

UPDATE = {
    "update_id": 10,
    "message": {
        "message_id": 5,
        "date": 1_764_000_000,
        "chat": {"id": 42, "type": "private", "first_name": "Мария"},
        "from": {"id": 42, "is_bot": False, "first_name": "Мария", "language_code": "ru"},
        "text": "<b>&amp; «²» 1e5",
        "entities": [{"type": "bot_command", "offset": 0, "length": 3}],
        "reply_to_message": {
            "message_id": 4,
            "date": 1_764_000_000,
            "chat": {"id": 42, "type": "private"},
            "photo": [{"file_id": "f", "file_unique_id": "u", "width": 90, "height": 90}],
            "reply_markup": {"inline_keyboard": [[{"text": "Оплатить", "callback_data": "pay:1"}]]},
        },
        "location": {"latitude": 55.75, "longitude": 37.61},
    },
}

# a Bot API call as the bot makes them: a method model nesting types (built at aiogram's import)
SEND = """
import json
def SEND():
    from aiogram.methods import SendMessage
    from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Оплатить", callback_data="pay:1")]]
    )
    call = SendMessage(chat_id=42, text="<b>x</b>", reply_markup=markup,
                       reply_parameters=ReplyParameters(message_id=4))
    dump = call.model_dump(exclude_none=True)  # aiogram's Default sentinels kept as they are
    return json.loads(json.dumps(dump, default=repr, ensure_ascii=False))
"""

PROBE = (
    SEND
    + """
import json, sys
import bot  # the hook, as every entry point of the bot puts it in place
from bot import lazy_models
hooked = any(type(f).__name__ == "_TypesFinder" for f in sys.meta_path)
from aiogram import Bot, Dispatcher, types
from aiogram.methods import SendMessage
from aiogram.types import CallbackQuery, Message, Update
report = {
    "hooked_before": hooked,
    "hook_left": any(type(f).__name__ == "_TypesFinder" for f in sys.meta_path),
    "install_again": lazy_models.install(),
    "built_at_import": [
        m.__name__ for m in (Update, Message, CallbackQuery, SendMessage) if lazy_models.built(m)
    ],
    "loader": type(types.__spec__.loader).__name__,
}
update = Update.model_validate(json.loads(sys.argv[1]))
report["text"] = update.message.text
report["button"] = update.message.reply_to_message.reply_markup.inline_keyboard[0][0].callback_data
report["chat"] = type(update.message.chat).__name__
report["dump"] = update.model_dump(mode="json", exclude_none=True, by_alias=True)
report["built_after_use"] = lazy_models.built(Update)
report["method"] = SEND()
report["method_built_after_use"] = lazy_models.built(SendMessage)
# every type can be built from the names kept for it (a missing name would raise here)
unbuilt = []
for name in types.__all__:
    model = getattr(types, name)
    if hasattr(model, "model_rebuild") and not lazy_models.built(model):
        model.model_rebuild(raise_errors=True)
        if not lazy_models.built(model):
            unbuilt.append(name)
report["unbuilt"] = unbuilt
print(json.dumps(report, ensure_ascii=False))
"""
)

EAGER = (
    SEND
    + """
import json, sys
from aiogram.types import Update
update = Update.model_validate(json.loads(sys.argv[1]))
dump = update.model_dump(mode="json", exclude_none=True, by_alias=True)
print(json.dumps({"dump": dump, "method": SEND()}))
"""
)


def run(script: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(UPDATE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def test_types_are_built_on_first_use_and_parse_as_eager_ones_do() -> None:
    lazy = run(PROBE)
    assert lazy["hooked_before"] is True
    assert lazy["built_at_import"] == []  # nothing built by the import itself
    assert lazy["loader"] == "_DeferredLoader"
    assert lazy["hook_left"] is False and lazy["install_again"] is False
    assert lazy["text"] == "<b>&amp; «²» 1e5"
    assert lazy["button"] == "pay:1"
    assert lazy["chat"] == "Chat"
    assert lazy["built_after_use"] is True and lazy["method_built_after_use"] is True
    assert lazy["unbuilt"] == []
    # the same JSON out as aiogram's own eager build gives for the same update
    eager = run(EAGER)
    assert lazy["dump"] == eager["dump"]
    assert lazy["method"] == eager["method"]
    assert lazy["method"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "Оплатить"  # type: ignore[index]
    assert lazy["dump"]["message"]["from"]["first_name"] == "Мария"  # type: ignore[index]


def test_install_after_aiogram_types_is_a_no_op() -> None:
    script = """
import json, sys
import aiogram.types
from bot import lazy_models
print(json.dumps({"installed": lazy_models.install(),
                  "built": lazy_models.built(aiogram.types.Message)}))
"""
    assert run(script) == {"installed": False, "built": True}
