# «Поддержка»: the resident's side, the staff supergroup, the dashboard topic.

menu-support = 💬 Поддержка
support-intro =
    Напишите свой вопрос — ответит сотрудник, здесь же, в этом чате. Можно приложить фото или файл.

    Не присылайте номер телефона, адрес и данные карты: для ответа они не нужны.
support-sent = ✅ Передали сотруднику. Ответ придёт сюда, в этот чат. Можно дописать ещё.
support-masked = Номер телефона или карты мы скрыли — сотруднику он не нужен.
support-not-passed = Это не передать: пришлите текст, фото или файл. Телефон, адрес и геопозицию присылать не нужно.
support-partly = Передали сотруднику { $sent } из { $total } — остальное не дошло. Пришлите, пожалуйста, только недошедшее ещё раз чуть позже.
support-unavailable = Поддержка сейчас недоступна. Попробуйте чуть позже.
support-leave = Выйти из поддержки
support-answer = ✏️ Ответить
# Under a staff reply whose long caption could not carry the button itself.
support-answer-below = Чтобы ответить сотруднику, нажмите кнопку ниже.

support-topic-name = { $name } · #{ $number }
support-topic-resident = Житель
support-dashboard-name = Dashboard
support-reply-corrected = ✏️ Сотрудник исправил своё сообщение — выше оно в новом виде.
support-staff-not-passed = Это жителю не передаётся: отправьте текст, фото, файл или место на карте.
support-resident-blocked = Житель заблокировал бота — ответ не доставлен.
support-reply-part-failed = Не доставлено частей ответа: { $failed } из { $total } (сообщение удалено или недоступно). Остальное житель получил.
support-stats =
    Сегодня (по Москве):
    • привязанных жителей: { $residents }
    • оплат прошло: { $payments } на { $paid }
    • обращений «Наш город» отправлено: { $reports }
    • уведомлений не доставлено (всего): { $failed }
support-resident-usage = Укажите номер жителя: /resident 42 — он есть в названии темы.
support-resident-unknown = Жителя #{ $number } нет.
support-resident-unlinked =
    Житель #{ $number }: аккаунт mos.ru не привязан.
    Обращений: { $reports }, автоплатежей: { $autopays }.
support-resident-card =
    Житель #{ $number }: { $name }
    Учётная запись: { $level }, привязана { $linked }.
    Обращений: { $reports }, автоплатежей: { $autopays }.

dashboard-report =
    📣 Новое обращение «Наш город» № { $number }
    Тема: { $theme }
    Адрес: { $address }
    Карта: { $map }
    Фото: { $photos }
dashboard-autopay-failed =
    ⚠️ Автоплатёж № { $number } не прошёл ({ $period }), попыток: { $attempts }.
    { $what }, { $amount }.
    Причина: { $reason }.
dashboard-failure-declined = банк отклонил списание
dashboard-failure-funds = недостаточно средств
dashboard-failure-card-expired = срок действия карты истёк
dashboard-failure-other = платёж не прошёл
dashboard-failure-card-removed = карты больше нет среди сохранённых
dashboard-failure-needs-confirmation = банк просит 3-D Secure на каждое списание
dashboard-failure-relink = вход в mos.ru больше не действует
dashboard-failure-target-gone = получатель больше не принимает платежи
dashboard-failure-over-ceiling = сумма выше допустимой для автоплатежа
dashboard-failure-topup-limits = сумма пополнения вне лимитов сервиса
dashboard-failure-no-balance = сервис не показывает баланс (автоплатёж по порогу)
dashboard-failure-topup-full = на счёте нет места для пополнения
dashboard-failure-refused = город отказал в платеже
dashboard-failure-canceled = платёж отменён
dashboard-autopay-paused =
    ⏸ Автоплатёж № { $number } на паузе ({ $period }), попыток: { $attempts }.
    { $what }, { $amount }.
    Причина: { $reason }.
dashboard-dead-letter = 📭 Уведомление № { $number } («{ $kind ->
        [report_status] статус обращения
        [report_sent] обращение отправлено
        [bill_issued] пришёл счёт
        [meter_window] приём показаний
        [autopay_reminder] напоминание об автоплатеже
        [autopay_paid] автоплатёж прошёл
        [autopay_failed] автоплатёж не прошёл
        [autopay_paused] автоплатёж приостановлен
        [autopay_over_limit] автоплатёж выше лимита
        [autopay_missed] автоплатёж пропущен
        [autopay_topup_full] пополнение не понадобилось
       *[other] { $kind }
    }») не доставлено. Попыток: { $attempts }.
dashboard-digest =
    📊 Итоги за { $day }
    Новых привязок: { $links }
    Платежей: { $payments } на { $paid }
    Пожертвований: { $donations } на { $donated }
    Обращений «Наш город»: { $reports }
    Сбоев (уведомления, автоплатежи): { $failures }
    На графике — сумма платежей и пожертвований за 7 дней.
dashboard-platform-down = 🔴 Городская платформа не отвечает с { $at }. Жители видят «сервис временно недоступен».
dashboard-platform-up = 🟢 Городская платформа снова отвечает ({ $at }).
dashboard-payment-errors = ⚠️ Всплеск ошибок оплаты: { $count } платежей за 15 минут остались без ответа платформы. Проверьте платёжный шлюз.
dashboard-telegram-refund =
    💸 Нужен возврат: Telegram списал { $amount }, а город платёж не принял.
    Причина: { $reason }.
    Житель #{ $number }, платёж бота № { $intent }.
    Telegram charge id: <code>{ $charge }</code>
    ID у провайдера: <code>{ $provider }</code>
    Верните деньги в кабинете платёжного провайдера — житель знает, что их вернут.
dashboard-refund-already-paid = счёт уже был оплачен
dashboard-refund-amount-changed = сумма счёта изменилась
dashboard-refund-second-charge = за этот счёт Telegram уже принял другой платёж (оплачен дважды, например с двух устройств); этот в город не передан
dashboard-taken-foreign = { $taken } в валюте { $currency } (в её минимальных единицах)
dashboard-refund-second-charge-unpaid = за этот счёт Telegram уже принял другой платёж, который город тоже не принял (его возврат — отдельной записью); этот в город не передан, счёт не оплачен
dashboard-refund-charge-mismatch = Telegram сообщил о списании другой суммы или валюты, чем в счёте; платёж в город не передан — сверьте сумму в кабинете провайдера
dashboard-refund-replaced = счёт выставлен заново, этот уже не действовал
dashboard-refund-unlinked = город не ответил, а житель отвязал аккаунт — зарегистрировать платёж больше некому; прежде чем вернуть, проверьте в журнале города, что платёж не прошёл
