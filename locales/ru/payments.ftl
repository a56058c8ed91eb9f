# Paying bills: choosing, confirming, results and receipts.

bills-pick-hint = Отметьте счета, которые хотите оплатить, или нажмите «Оплатить все».
bills-pay-selected = Оплатить выбранные ({ $selected_count })
bills-pay-all = Оплатить все — { $total }
bills-details = ℹ️ Подробнее о счёте
bills-details-pick = Какой счёт показать?
bills-card =
    { $title }
    Получатель: { $provider }
    Сумма: { $amount }
    Срок оплаты: { $due }
bills-card-overdue = ⚠️ Счёт просрочен.
bills-card-uin = УИН: { $uin }
bills-card-payer = Код плательщика: { $payer_code }, период { $period }
bills-card-pay = Оплатить этот счёт

pay-confirm =
    { $count ->
        [one] К оплате { $count } счёт:
        [few] К оплате { $count } счёта:
       *[many] К оплате { $count } счетов:
    }
pay-confirm-requisites = Оплата по реквизитам:
pay-line = • { $title } — { $amount }
pay-total = Итого: { $total }
pay-method-card = Способ оплаты: карта { $brand } •• { $last4 }
pay-method-new = Способ оплаты: новая карта (откроется страница оплаты)
pay-button = Оплатить { $total }
pay-change-method = Другой способ оплаты
pay-choose-method = Чем оплатить?
pay-method-button = { $brand } •• { $last4 }
pay-new-card = Новая карта
pay-cancel = Отмена

pay-paid =
    ✅ Оплачено { $total }.

    Квитанция № { $number } от { $issued }
pay-receipt-line = • { $title } — { $amount }
pay-receipt-card = Карта •• { $last4 }
pay-needs-confirmation = Осталось подтвердить оплату на странице банка. После этого нажмите «Проверить оплату».
pay-open-page = Перейти к оплате
pay-check = Проверить оплату
pay-declined = Банк отклонил платёж — деньги не списаны. Попробуйте другую карту.
pay-insufficient-funds = На карте недостаточно средств — деньги не списаны. Выберите другую карту.
pay-expired-card = Срок действия карты истёк — деньги не списаны. Выберите другую карту.
pay-canceled = Оплата отменена — деньги не списаны.
pay-already-paid = Этот счёт уже оплачен — мы ничего не списали.
pay-amount-changed = Сумма изменилась: теперь к оплате { $new_amount }. Ничего не списано — подтвердите новую сумму.
pay-pay-new-amount = Оплатить { $new_amount }
pay-unknown = Банк пока не ответил. Не оплачивайте повторно — мы проверим платёж. Нажмите «Проверить оплату» через минуту.
pay-in-progress = Платёж уже обрабатывается — подождите немного и нажмите «Проверить оплату».
pay-other-card = Выбрать другую карту
pay-done = Готово
pay-unknown-bill = Этого счёта нет среди ваших неоплаченных — возможно, он уже оплачен. Откройте «Мои счета» ещё раз.
pay-reconciled = ✅ Платёж на { $total } прошёл. Квитанция № { $number }.

history-title = Последние платежи:
history-line = { $date } — { $amount }, { $status }
history-receipt = квитанция № { $number }
history-empty = Платежей пока нет.
history-status-succeeded = оплачено
history-status-pending = ожидает подтверждения
history-status-failed = не прошёл

pay-method-telegram = Способ оплаты: Telegram (счёт придёт в этот чат)
pay-method-telegram-button = Оплатить в Telegram
tgpay-title = Оплата городских счетов
tgpay-description = Оплата счетов через бот городских услуг
tgpay-invoice-sent = Счёт отправлен ниже — оплатите его прямо в Telegram.
tgpay-refused-unknown = Этот счёт больше не действует. Откройте «Мои счета» и начните оплату заново.
tgpay-refused-amount = Сумма счёта изменилась. Откройте «Мои счета» и подтвердите новую сумму.
tgpay-registered = ✅ Платёж получен и зачислен. Квитанция № { $number }.
tgpay-pending = Платёж получен. Городской сервис подтвердит его в ближайшее время — платить повторно не нужно.
tgpay-orphan = Платёж получен, но мы не смогли сразу связать его со счётом. Поддержка разберётся и свяжется с вами — платить повторно не нужно.
