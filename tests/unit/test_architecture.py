"""The layout's rules, enforced: a pure domain, no words in handlers, locale keys both ways."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from bot.i18n import defined_keys, load_translator

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_DOMAIN = {"aiogram", "aiogram_dialog", "sqlalchemy", "aiohttp", "redis", "apscheduler"}
CODE_DIRS = ("bot", "handlers", "domain", "storage", "city")
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
# A key is used in code as tr("key"), Tr("key"), or as a string literal in a *_KEYS table.
KEY_CALL = re.compile(r"""\b(?:tr|Tr)\(\s*["']([a-z][a-z0-9-]*)["']""")
KEY_LITERAL = re.compile(r"""["']((?:[a-z]+-)+[a-z0-9]+)["']""")


def python_files(*dirs: str) -> list[Path]:
    return [path for d in dirs for path in (ROOT / d).rglob("*.py")]


def imported_modules(path: Path) -> set[str]:
    return imported_in(path.read_text("utf-8"))


def imported_in(source: str) -> set[str]:
    """The top-level packages `source` imports, absolute imports only (wherever they stand:
    inside functions and `if TYPE_CHECKING:` too)."""
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_imports_no_framework_or_adapter() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN_IN_DOMAIN)
        for path in python_files("domain")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_domain_does_not_import_outer_layers() -> None:
    outer = {"bot", "handlers", "storage", "city"}
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & outer)
        for path in python_files("domain")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_handlers_do_not_import_the_wiring() -> None:
    """handlers → domain; bot/ wires and passes the handlers what they need (handlers.ports:
    the texts, the QR reader) through the dispatcher's data. The dependency points bot →
    handlers, never back."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & {"bot"})
        for path in python_files("handlers")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_wiring_check_can_fail() -> None:
    planted = (
        "from bot.i18n import Translator\n"
        "def f():\n"
        "    import bot.qr_decoder\n"
        "from handlers.ports import Texts\n"
        "from . import texts\n"
    )
    assert imported_in(planted) & {"bot"} == {"bot"}
    assert imported_in("import bot.metrics as m\n") == {"bot"}
    assert imported_in("from handlers.ports import Texts\nfrom . import bot\n") == {"handlers"}


def _loaded_after(statement: str) -> set[str]:
    probe = f"import sys\n{statement}\nprint(' '.join(sys.modules))"
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(run.stdout.split())


def test_the_qr_reader_is_loaded_with_the_first_picture_not_at_start_up() -> None:
    """handlers/receipts.py gets the reader through the dispatcher's data (bot.app.decode_qr),
    so building the dispatcher loads neither bot.qr_decoder nor zxing-cpp."""
    start_up = _loaded_after("import bot.app, bot.runners\nbot.app.build_router()")
    assert {"handlers.receipts", "bot.app"} <= start_up
    assert start_up & {"bot.qr_decoder", "zxingcpp"} == set()
    assert {"bot.qr_decoder", "zxingcpp"} <= _loaded_after("import bot.qr_decoder")


def test_no_cyrillic_literal_in_handlers() -> None:
    """Words a resident reads live in locales/ru; docstrings may name features in Russian."""
    found = []
    for path in [*python_files("handlers"), ROOT / "bot" / "web.py", ROOT / "bot" / "app.py"]:
        tree = ast.parse(path.read_text("utf-8"))
        docstrings = {id(node) for node in _docstrings(tree)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if CYRILLIC.search(node.value) and id(node) not in docstrings:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def _docstrings(tree: ast.AST) -> list[ast.AST]:
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [
        owner.body[0].value
        for owner in ast.walk(tree)
        if isinstance(owner, owners)
        and owner.body
        and isinstance(owner.body[0], ast.Expr)
        and isinstance(owner.body[0].value, ast.Constant)
    ]


def test_the_cyrillic_check_can_fail() -> None:
    tree = ast.parse('"""Docstring «Мои счета»."""\nTEXT = "Привет"\n')
    docstrings = {id(node) for node in _docstrings(tree)}
    literals = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in docstrings
    ]
    assert literals == ["Привет"]


def used_keys() -> set[str]:
    keys: set[str] = set()
    defined = defined_keys()
    for path in python_files("handlers", "bot"):
        source = path.read_text("utf-8")
        keys.update(KEY_CALL.findall(source))
        # Literals in lookup tables (LEVEL_KEYS, ERROR_KEYS, "x" if ... else "y"): any literal
        # shaped like a key counts as used when it names a defined message.
        keys.update(k for k in KEY_LITERAL.findall(source) if k in defined)
    return keys


def test_every_key_used_in_code_is_defined() -> None:
    assert used_keys() - defined_keys() == set()


def test_no_key_is_orphaned() -> None:
    assert defined_keys() - used_keys() == set()


def test_translator_formats_plurals_and_variables() -> None:
    tr = load_translator()
    assert tr("bills-title", count=1, total="10,00 ₽").startswith("У вас 1 неоплаченный счёт")
    assert "3 неоплаченных счёта" in tr("bills-title", count=3, total="1 ₽")
    assert "5 неоплаченных счетов" in tr("bills-title", count=5, total="1 ₽")
    assert "21 неоплаченный счёт" in tr("bills-title", count=21, total="1 ₽")
    assert tr("link-done", name="Мария И.", level="полная") == (
        "Готово! Аккаунт привязан: Мария И., учётная запись полная."
    )


def test_every_ftl_file_parses() -> None:
    load_translator()  # raises on Junk


def test_points_plurals() -> None:
    tr = load_translator()
    expected = {
        0: "0 баллов",
        1: "1 балл",
        2: "2 балла",
        5: "5 баллов",
        11: "11 баллов",
        21: "21 балл",
        22: "22 балла",
        25: "25 баллов",
        111: "111 баллов",
    }
    assert {n: tr("points-count", count=n) for n in expected} == expected
    assert tr("points-balance", balance=21) == "У вас 21 балл."
    assert tr("points-balance", balance=2) == "У вас 2 балла."
