# Autopay and notification settings.

menu-autopay = 🔁 Автоплатежи
menu-settings = ⚙️ Настройки
autopay-title = Ваши автоплатежи:
autopay-none = Автоплатежей пока нет. Можно платить за квартиру, связь, садик и кружки автоматически или регулярно помогать фонду.
autopay-line = { $what } — { $how }, { $when }{ $paused }
autopay-paused-mark = {" "}(на паузе)
autopay-add = ➕ Подключить автоплатёж
autopay-connect = 🔁 Подключить автоплатёж
autopay-kind-ask = Что оплачивать автоматически?
autopay-kind-bill = Счёт за услугу, когда он придёт
autopay-kind-fund = Пожертвование фонду
autopay-service-ask = За какую услугу?
autopay-no-services = Пока нет счетов, которые можно оплачивать автоматически (ЕПД, МГТС, детский сад, кружки).
autopay-fund-ask = Какому фонду помогать?
autopay-frequency-ask = Как часто?
autopay-monthly = Раз в месяц
autopay-weekly = Раз в неделю
autopay-day-ask = Какого числа списывать? Напишите число от 1 до 31 (29–31 в коротких месяцах — последний день месяца).
autopay-day-bad = Нужно число от 1 до 31.
autopay-weekday-ask = В какой день недели?
weekday-0 = понедельник
weekday-1 = вторник
weekday-2 = среда
weekday-3 = четверг
weekday-4 = пятница
weekday-5 = суббота
weekday-6 = воскресенье
autopay-limit-ask = До какой суммы платить без вопросов? Счёт больше лимита я пришлю на оплату вручную. Напишите сумму, например 10000.
autopay-amount-ask = Сколько перечислять? Минимум 50 ₽.
autopay-amount-bad = Нужна сумма не меньше 50 ₽, например 300.
autopay-limit-bad = Не понял сумму. Напишите, например, 10000.
autopay-card-ask = С какой карты списывать?
autopay-no-cards = Для автоплатежа нужна сохранённая карта. Оплатите любой счёт новой картой и сохраните её — или добавьте карту на mos.ru.
autopay-summary =
    Проверьте автоплатёж:
    { $what }
    { $how }
    { $when }
    Карта •• { $last4 }
    Первое списание: { $first }
autopay-confirm = Подключить
autopay-created = ✅ Автоплатёж подключён. Накануне списания я напомню — можно будет пропустить раз.
autopay-what-bill = Оплата: { $service }
autopay-what-fund = Помощь фонду «{ $fund }»
autopay-how-limit = счёт целиком, до { $limit }
autopay-how-amount = { $amount }
autopay-when-monthly = каждое { $day }-е число
autopay-when-weekly = каждую неделю, { $weekday }
autopay-pause = ⏸ Приостановить
autopay-resume = ▶️ Возобновить
autopay-delete = 🗑 Удалить
autopay-deleted = Автоплатёж удалён.
autopay-card =
    { $what }
    { $how }, { $when }
    Следующее списание: { $next }
    { $state }
autopay-state-active = Статус: включён
autopay-state-paused = Статус: на паузе
service-epd = ЕПД (квартплата)
service-mgts = МГТС
service-kindergarten = детский сад
service-club = кружки и секции

notify-autopay-reminder = Завтра спишем по автоплатежу: { $what } — { $how }.
notify-autopay-skip = Пропустить этот раз
notify-autopay-skipped = Хорошо, в этот раз не спишем. Следующее списание — по расписанию.
notify-autopay-skip-late = Этот платёж уже прошёл или время пропуска вышло.
notify-autopay-paid = ✅ Автоплатёж: { $what } — списано { $amount }. Квитанция № { $receipt }.
notify-autopay-over-limit = Счёт ({ $what }) на { $amount } больше лимита автоплатежа ({ $limit }). Оплатите его в «Мои счета», если всё верно.
notify-autopay-failed = Автоплатёж ({ $what }) не прошёл три дня подряд: банк отклонил списание. Проверьте карту или оплатите вручную в «Мои счета».
notify-autopay-card-expired = Автоплатёж ({ $what }) не прошёл: срок действия карты истёк. Выберите новую карту в «Автоплатежи».

settings-title = Какие уведомления присылать? Нажмите, чтобы включить или выключить.
settings-kind-on = ✅ { $name }
settings-kind-off = ❌ { $name }
settings-report-status = Ответы по обращениям
settings-autopay-reminder = Напоминания об автоплатежах
settings-autopay-result = Результаты автоплатежей
settings-urgent-note = Срочные сообщения (отказ банка, истёкшая карта) приходят всегда.
autopay-edit-money = ✏️ Сумма или лимит
autopay-edit-day = ✏️ День списания
