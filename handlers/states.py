"""Dialog states, one group per feature."""

from aiogram.fsm.state import State, StatesGroup


class MenuSG(StatesGroup):
    main = State()
    login = State()


class BillsSG(StatesGroup):
    list = State()


class UnlinkSG(StatesGroup):
    confirm = State()
