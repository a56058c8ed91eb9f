# «Шаблоны»: payment templates (handlers/templates.py).

templates-save-button = 📌 Сохранить как шаблон
templates-change-amount = ✏️ Изменить сумму
templates-title =
    📌 Шаблоны платежей.
    Нажмите на шаблон — я покажу сумму к оплате, останется нажать «Оплатить».
templates-empty =
    Шаблонов пока нет.
    После оплаты нажмите «Сохранить как шаблон» — и следующий такой платёж займёт два нажатия: шаблон и «Оплатить».
templates-button = { $name } · { $amount }
templates-button-bill = { $name } · по счёту
templates-button-unreadable = { $name } · недоступен
templates-manage = ⚙️ Переименовать или удалить
templates-manage-title = Какой шаблон изменить?
templates-card =
    Шаблон «{ $name }»
    { $what }
templates-what-bill = Оплачивает счёт, который выставлен сейчас: { $service }, код плательщика { $code }.
templates-what-bill-nocode = Оплачивает счёт, который выставлен сейчас: { $service }, { $provider }.
templates-what-unreadable = Шаблон недоступен: эта версия бота не может его прочитать. Его можно только удалить.
templates-what-donation = Пожертвование фонду «{ $fund }», { $amount }.
templates-what-requisites = Платёж по реквизитам: { $payee }, { $amount }.
templates-what-other = Платёж на { $amount }.
templates-what-display = { $what }, { $amount }.
templates-rename = ✏️ Переименовать
templates-delete = 🗑 Удалить
templates-rename-ask = Как назвать шаблон «{ $name }»? Напишите новое название — не длиннее 64 символов.
templates-name-empty = Название не может быть пустым. Напишите несколько слов, например «Квартплата».
templates-name-long = Слишком длинное название: можно не больше { $max } символов. Напишите короче.
templates-renamed = Готово: шаблон называется «{ $name }».
templates-delete-ask = Удалить шаблон «{ $name }»? Прошлые платежи по нему останутся в истории.
templates-delete-yes = Да, удалить
templates-delete-no = Нет, оставить
templates-deleted = Шаблон удалён.
templates-gone = Этого шаблона больше нет.
templates-no-bill = Счёта к оплате сейчас нет: { $service } — всё оплачено, а новый счёт ещё не выставлен. Когда он придёт, он появится в этом шаблоне — оплатить его можно будет отсюда.
templates-fund-gone = Фонд «{ $fund }» больше не принимает пожертвования, поэтому оплатить этот шаблон нельзя. Шаблон можно удалить.
templates-stale-delete = 🗑 Удалить шаблон
templates-paying = 📌 Шаблон «{ $name }»
templates-paying-bill =
    📌 Шаблон «{ $name }»
    Получатель: { $provider }
templates-unreadable = Шаблон недоступен: эта версия бота не может его прочитать, поэтому оплатить по нему нельзя. Шаблон можно удалить.
templates-topup-gone = Это пополнение сейчас недоступно: город его не принимает. Шаблон можно удалить.
templates-topup-account-gone = Город не нашёл счёт этого шаблона — карту могли заменить или закрыть. Деньги не списаны. Шаблон можно удалить, а пополнить новую карту — в «Пополнить».
templates-amount-ask = Сколько заплатить? Напишите сумму, например 500 или 1 500,50.
templates-amount-bad = Не понял сумму. Напишите, например, 500 или 1 500,50.
templates-save-ask =
    Как назвать шаблон? Нажмите кнопку с предложенным названием или напишите своё — не длиннее { $max } символов.
templates-save-proposed = Сохранить: { $proposal }
templates-saved =
    📌 Шаблон «{ $name }» сохранён.
    В следующий раз: «Шаблоны» в меню → «{ $name }» → «Оплатить».
templates-updated = 📌 Такой шаблон уже был — теперь он называется «{ $name }».
templates-too-many = У вас уже { $max } шаблонов — больше не помещается, чтобы список оставался коротким. Удалите ненужный: «Шаблоны» → «Переименовать или удалить», — и сохраните снова.
templates-not-templatable = Этот платёж нельзя сохранить как шаблон: сохраняются платежи за квартиру, связь, детский сад и кружки, по реквизитам без периода и начисления (квитанцию за конкретный месяц или штраф оплачивают один раз — следующую квитанцию просто отсканируйте) и пожертвования.
templates-name-bill = { $service }, код { $code }
templates-name-other = Платёж на { $amount }
templates-service-epd = ЕПД
templates-service-mgts = МГТС
templates-service-kindergarten = Детский сад
templates-service-club = Кружок
templates-service-other = Счёт
