"""Dialog states, one group per feature."""

from aiogram.fsm.state import State, StatesGroup


class MenuSG(StatesGroup):
    main = State()
    login = State()


class BillsSG(StatesGroup):
    list = State()
    pick = State()
    card = State()


class PaySG(StatesGroup):
    confirm = State()
    method = State()
    result = State()
    error = State()


class UinSG(StatesGroup):
    input = State()
    found = State()


class FinesSG(StatesGroup):
    input = State()
    list = State()


class HistorySG(StatesGroup):
    list = State()


class ReceiptSG(StatesGroup):
    summary = State()
    amount = State()
    problem = State()


class UnlinkSG(StatesGroup):
    confirm = State()
