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
    earlier = State()  # the same obligation paid or in flight before: check / confirm first


class UinSG(StatesGroup):
    input = State()
    found = State()


class FinesSG(StatesGroup):
    input = State()
    list = State()


class HistorySG(StatesGroup):
    list = State()


class TopupSG(StatesGroup):
    service = State()
    account = State()
    amount = State()


class ReceiptSG(StatesGroup):
    summary = State()
    amount = State()
    problem = State()
    album = State()  # several pictures in one album, each read


class UnlinkSG(StatesGroup):
    confirm = State()


class CharitySG(StatesGroup):
    main = State()
    funds = State()
    fund = State()
    amount = State()
    helped = State()


class PointsSG(StatesGroup):
    main = State()
    earn = State()
    pick_fund = State()
    amount = State()
    confirm = State()
    done = State()
    prize_categories = State()  # «Обменять»: the catalogue's categories
    prizes = State()
    prize = State()
    prize_confirm = State()
    prize_done = State()
    my_prizes = State()


class MetersSG(StatesGroup):
    list = State()
    input = State()
    confirm = State()
    done = State()


class ReportSG(StatesGroup):
    resume = State()
    theme = State()
    theme_results = State()
    groups = State()
    group_themes = State()
    place = State()
    place_pick = State()
    photos = State()
    description = State()
    attributes = State()
    review = State()
    duplicate = State()
    done = State()


class MyReportsSG(StatesGroup):
    list = State()
    card = State()
    refute = State()
    refute_photo = State()


class AutopaySG(StatesGroup):
    list = State()
    card = State()
    kind = State()
    service = State()
    fund = State()
    frequency = State()
    day = State()
    weekday = State()
    money = State()
    method = State()
    summary = State()
    threshold = State()  # a top-up autopay: «когда баланс ниже N ₽»
    topup = State()  # a top-up autopay: which card or parking account
    how = State()  # a bill service that also takes a fixed amount (МГТС): by bill or fixed?


class SettingsSG(StatesGroup):
    main = State()
    quiet = State()


class SupportSG(StatesGroup):
    chat = State()


class TemplatesSG(StatesGroup):
    list = State()  # «Шаблоны»: a tap pays
    manage = State()  # «Переименовать или удалить»: a tap opens the card
    card = State()
    rename = State()
    delete = State()
    stale = State()  # the payee stopped taking payments (no bill now, a fund gone)
    amount = State()  # «Изменить сумму»
    save = State()  # after a payment: the name
    saved = State()
