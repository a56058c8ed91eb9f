"""The hosted payment page `/pay/{payment_id}`: what a resident's browser opens from a pending
payment's `confirmation_url` (no Bearer token: the unguessable payment id is the key).

- waiting for a card: a form with `card_number` (and a cancel button, `action=reject`);
- waiting for 3-D Secure: buttons `action=confirm` and `action=reject`.

Every page carries `<p id="payment-status" data-status="...">` for screenless browsers.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from domain.money import format_rub
from sandbox.cards import TEST_CARD_HINTS, TEST_CARDS, normalize_card_number
from sandbox.common import html_response
from sandbox.funds import fund_by_id
from sandbox.oauth import DATA_KEY
from sandbox.payments import Awaiting, Payment, PaymentStatus
from sandbox.payments_api import PAYMENTS_KEY

routes = web.RouteTableDef()

_OUTCOMES = {
    PaymentStatus.SUCCEEDED: ("Оплата прошла", "Спасибо! Чек появится в истории платежей."),
    PaymentStatus.DECLINED: ("Банк отклонил оплату", "Попробуйте другую карту."),
    PaymentStatus.INSUFFICIENT_FUNDS: (
        "Недостаточно средств",
        "На карте не хватает денег. Пополните её или выберите другую карту.",
    ),
    PaymentStatus.EXPIRED_CARD: ("Срок действия карты истёк", "Выберите другую карту."),
    PaymentStatus.CANCELED: ("Оплата отменена", "Деньги не списаны."),
    PaymentStatus.PENDING: ("Платёж ожидает оплаты", "Откройте ссылку на оплату ещё раз."),
}


@routes.get("/pay/{payment_id}")
async def payment_page(request: web.Request) -> web.Response:
    payment = request.app[PAYMENTS_KEY].payments.get(request.match_info["payment_id"])
    if payment is None:
        return _problem(404, "Платёж не найден", "Ссылка на оплату неверна или устарела.")
    if payment.status is not PaymentStatus.PENDING:
        return _finished(payment)
    return _form(request, payment)


@routes.post("/pay/{payment_id}")
async def payment_submit(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    book = request.app[PAYMENTS_KEY]
    payment = book.payments.get(request.match_info["payment_id"])
    if payment is None:
        return _problem(400, "Платёж не найден", "Ссылка на оплату неверна или устарела.")
    if payment.status is not PaymentStatus.PENDING:
        return _finished(payment)
    action = fields.get("action")
    if action == "reject":
        book.cancel(payment)
    elif payment.awaiting is Awaiting.CONFIRMATION:
        if action != "confirm":
            return _problem(
                400, "Нужно подтверждение", "Нажмите «Подтвердить» или «Отклонить».", payment
            )
        book.confirm(payment)
    else:
        number = normalize_card_number(fields.get("card_number", ""))
        if number is None:
            return _problem(
                400,
                "Неверный номер карты",
                "Проверьте номер карты: 13–19 цифр с верной контрольной цифрой.",
                payment,
            )
        book.submit_card(payment, number)
        if payment.status is PaymentStatus.PENDING:
            return _form(request, payment)  # the card asks for 3-D Secure
    if payment.note is not None:
        return _problem(409, "Оплата отменена", f"Счета изменились: {payment.note}.", payment)
    return _result(payment)


# ---------------------------------------------------------------- pages


def _status_marker(payment: Payment) -> str:
    return (
        f'<p id="payment-status" data-status="{payment.status.value}">'
        f"Статус платежа: <code>{payment.status.value}</code></p>"
    )


def _summary(request: web.Request, payment: Payment) -> str:
    data = request.app[DATA_KEY]
    requisites = payment.request.requisites
    fund = None if payment.request.fund_id is None else fund_by_id(payment.request.fund_id)
    if fund is not None:
        items = [f"Пожертвование: {fund.name}"]
    elif requisites is not None:
        items = [f"{requisites.purpose} — {requisites.payee_name}"]
    elif payment.request.topup is not None:
        items = [f"Пополнение: {payment.request.topup.service} {payment.request.topup.account}"]
    else:
        bills = [data.bill(bill_id) for bill_id in payment.request.bill_ids]
        items = [f"{bill.title} — {format_rub(bill.amount)}" for bill in bills if bill is not None]
    listed = "".join(f"<li>{escape(item)}</li>" for item in items)
    return f"<ul>{listed}</ul><p>К оплате: <b>{escape(format_rub(payment.amount))}</b></p>"


def _form(request: web.Request, payment: Payment) -> web.Response:
    action = f"/pay/{escape(payment.id)}"
    reject = '<button type="submit" name="action" value="reject">Отменить оплату</button>'
    if payment.awaiting is Awaiting.CONFIRMATION:
        body = (
            "<h1>Подтверждение 3-D Secure</h1>"
            f"{_status_marker(payment)}{_summary(request, payment)}"
            f"<p>Банк просит подтвердить оплату картой •••• {escape(payment.card_last4 or '')}."
            "</p>"
            f'<form class="card" method="post" action="{action}">'
            '<button type="submit" name="action" value="confirm">Подтвердить</button> '
            '<button type="submit" name="action" value="reject">Отклонить</button>'
            "</form>"
        )
        return html_response(200, "Подтверждение оплаты — песочница", body)
    hints = "".join(
        f"<li><code>{number}</code> — {escape(TEST_CARD_HINTS[behaviour])}</li>"
        for number, behaviour in TEST_CARDS.items()
    )
    body = (
        "<h1>Оплата картой</h1>"
        f"{_status_marker(payment)}{_summary(request, payment)}"
        f'<form class="card" method="post" action="{action}">'
        '<label>Номер карты <input name="card_number" inputmode="numeric" '
        'autocomplete="cc-number" required></label> '
        f'<button type="submit">Оплатить {escape(format_rub(payment.amount))}</button>'
        "</form>"
        f'<form method="post" action="{action}">{reject}</form>'
        f"<p>Тестовые карты (любая другая карта с верным номером пройдёт):</p><ul>{hints}</ul>"
    )
    return html_response(200, "Оплата картой — песочница", body)


def _result(payment: Payment) -> web.Response:
    title, advice = _OUTCOMES[payment.status]
    body = f"<h1>{escape(title)}</h1>{_status_marker(payment)}<p>{escape(advice)}</p>"
    if payment.receipt is not None:
        body += f"<p>Чек № {escape(payment.receipt.number)}</p>"
    return html_response(200, f"{title} — песочница", body)


def _finished(payment: Payment) -> web.Response:
    title, _ = _OUTCOMES[payment.status]
    return _problem(409, "Платёж уже завершён", f"{title}. Повторно оплатить его нельзя.", payment)


def _problem(status: int, title: str, text: str, payment: Payment | None = None) -> web.Response:
    marker = "" if payment is None else _status_marker(payment)
    body = f"<h1>{escape(title)}</h1>{marker}<p>{escape(text)}</p>"
    return html_response(status, f"{title} — песочница", body)
