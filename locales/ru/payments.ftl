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
pay-confirm-donation = Пожертвование:
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

pay-refused = Город не принял этот платёж — деньги не списаны. Попробуйте другой способ или напишите в поддержку.
pay-refused-requisites = Город не принял платёж по реквизитам из этой квитанции — деньги не списаны. Проверьте квитанцию или оплатите по УИН («Добавить счёт по УИН»).
pay-refused-card = Эта карта больше не привязана к аккаунту mos.ru — деньги не списаны. Выберите другую карту.
pay-refused-bill = Этого счёта больше нет у города — деньги не списаны. Откройте «Мои счета» ещё раз.
pay-refused-fund = Этот фонд больше не принимает пожертвования — деньги не списаны.
pay-check-waiting = Проверили в { $time }: банк ещё не подтвердил оплату. Не оплачивайте повторно — мы сообщим, когда он ответит.
pay-earlier-unsettled =
    Этот платёж уже начат { $date } на { $amount }, и банк ещё не ответил.
    Сначала проверьте его — новая оплата может списать деньги второй раз.
pay-earlier-paid =
    Уже оплачено { $date }: { $amount }, квитанция № { $number }.
    Оплатить ещё раз — только если это действительно новый платёж.
pay-again = Всё равно оплатить ещё раз
pay-paid-before = Это уже оплачено — платить повторно не нужно.
pay-paid-before-on = Это уже оплачено { $date }, квитанция № { $number } — платить повторно не нужно.
history-resume = ⏳ Продолжить оплату { $amount } от { $date }
tgpay-refund-already-paid = Этот счёт уже оплачен — его оплатили, пока шла оплата в Telegram. Telegram списал { $amount }: эти деньги вам вернут. Поддержка уже знает и оформит возврат — платить повторно не нужно.
tgpay-refund-amount-changed = Пока шла оплата в Telegram, сумма счёта изменилась, и городской сервис не принял платёж. Telegram списал { $amount }: эти деньги вам вернут. Поддержка уже знает и оформит возврат — платить повторно этот платёж не нужно. Сам счёт пока не оплачен: новая сумма — в «Мои счета».
tgpay-refund-refused = Городской сервис не принял этот платёж. Telegram списал { $amount }: эти деньги вам вернут. Поддержка уже знает и оформит возврат — платить повторно не нужно.
