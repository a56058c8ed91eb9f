# City points («Миллион призов»).

menu-points = ⭐ Баллы
points-balance =
    { $balance ->
        [one] У вас { $balance } балл.
        [few] У вас { $balance } балла.
       *[many] У вас { $balance } баллов.
    }
points-pending =
    { $pending ->
        [one] Скоро придёт ещё { $pending } балл.
        [few] Скоро придут ещё { $pending } балла.
       *[many] Скоро придут ещё { $pending } баллов.
    }
points-history-title = Последние начисления и списания:
points-entry = { $date }: { $amount } — { $reason }
points-empty-history = Начислений пока нет.
points-earn = Как заработать сейчас
points-transfer = Перевести баллы в фонд
points-earn-readings =
    { $meters ->
        [one] Передайте показания { $meters } счётчика до { $until } — это +{ $points } баллов.
       *[other] Передайте показания { $meters } счётчиков до { $until } — это +{ $points } баллов.
    }
points-earn-readings-later = Показания счётчиков за баллы можно передать с { $opens_on }.
points-earn-epd = Оплачивайте ЕПД через бот: { $points }% суммы вернётся баллами в течение 7 дней.
points-earn-send = Передать показания
points-transfer-pick = Какому фонду перевести баллы?
points-transfer-ask = Сколько баллов перевести фонду «{ $fund }»? У вас { $balance }.
points-transfer-bad = Напишите целое число баллов, не больше, чем у вас есть ({ $balance }). Например: 100 или 1 500.
points-transfer-grouping = Не понял число: пробел разделяет только разряды по три цифры («1 500» или «1 500 000»). Напишите, сколько баллов перевести — не больше, чем у вас есть ({ $balance }).
# The same three when the city could not say the balance: the platform checks it at the transfer.
points-transfer-ask-unknown = Сколько баллов перевести фонду «{ $fund }»? Баланс сейчас не загрузился — город проверит его при переводе.
points-transfer-bad-unknown = Напишите целое число баллов. Например: 100 или 1 500.
points-transfer-grouping-unknown = Не понял число: пробел разделяет только разряды по три цифры («1 500» или «1 500 000»). Напишите, сколько баллов перевести.
points-transfer-confirm = Перевести { $points } фонду «{ $fund }»? Баллы спишутся сразу.
points-transfer-yes = Подтвердить
points-transfer-done = Готово: фонд «{ $fund }» получил { $points }. Осталось { $balance }.
points-transfer-fund-closed = Фонд «{ $fund }» больше не принимает баллы — ничего не списано. Выберите другой фонд.
points-transfer-insufficient = Баллов не хватает: у вас { $balance }.
points-transfer-unknown = Сервис города не ответил, и мы пока не знаем, прошёл ли перевод: баллы могли уже списаться. Сами мы его больше не отправим. Проверьте историю в «Баллы» чуть позже или повторите тот же перевод — ту же сумму тому же фонду: дважды баллы не спишутся.
points-transfer-pending = Перевод фонду «{ $name }» на { $points }: пока не знаем, прошёл ли он. Проверьте историю баллов позже или повторите тот же перевод — дважды баллы не спишутся.
points-transfer-pending-other = Мы пока не знаем, прошёл ли прошлый перевод этому фонду на { $points }. Чтобы баллы не списались дважды, повторите его на ту же сумму — { $points }. Перевести другую сумму можно, когда он найдётся в истории баллов или после кнопки «Забыть» в «Баллы».
unsettled-forget = Забыть: { $name }
unsettled-forget-warning =
    { $operation }

    Забыть его? Тогда мы больше не сможем узнать повтор: если повторить его потом, баллы могут списаться ещё раз. Забывайте, только если в истории баллов видно, что он прошёл, или вы точно не будете его повторять.
unsettled-forget-yes = Да, забыть
unsettled-forget-no = Не забывать
points-count =
    { $count ->
        [one] { $count } балл
        [few] { $count } балла
       *[many] { $count } баллов
    }
pay-epd-points = За ЕПД вернётся { $points } в течение 7 дней.

## Prizes for points: «Обменять» and «Мои призы».

prizes-exchange = Обменять
prizes-mine = Мои призы
prizes-more = Другие призы
prizes-categories = Что хотите получить за баллы? У вас { $balance }.
prizes-category-souvenirs = Сувениры
prizes-category-home = Для дома
prizes-category-promo-codes = Промокоды
prizes-category-tickets = Билеты в театры и музеи
prizes-category-other = Другое
prizes-list = { $category }: выберите приз.
prizes-list-empty = { $category }: сейчас призов нет — загляните позже.
prizes-item = { $name } · { $price }
prizes-item-sold-out = { $name } · закончился
prizes-card =
    <b>{ $name }</b>

    { $description }

    Цена: { $price }.
prizes-sold-out = Этот приз закончился — выберите другой. Баллы не списаны.
prizes-take = Обменять на баллы
prizes-not-enough = Баллов пока не хватает: приз стоит { $price }, у вас { $balance } — не хватает ещё { $missing }. Ничего не списано. Баллы можно заработать: загляните в «Как заработать сейчас».
prizes-confirm = Обменять { $price } на «{ $name }»? Баллы спишутся сразу.
prizes-done =
    Готово: «{ $name }» — ваш.
    Код: <code>{ $code }</code> (действует до { $until }).
    Он сохранён в «Мои призы». Осталось { $balance }.
prizes-price-changed = Цена приза изменилась: теперь { $price }. Ничего не списано — откройте приз ещё раз.
prizes-unknown = Такого приза нет в каталоге. Ничего не списано.
prizes-unknown-outcome = Сервис города не ответил, и мы пока не знаем, прошёл ли обмен: баллы могли уже списаться. Сами мы его больше не отправим. Загляните в «Мои призы» чуть позже — если обмен прошёл, код будет там — или обменяйте тот же приз ещё раз: дважды баллы не спишутся, а код покажем.
prizes-pending = Обмен на «{ $name }» за { $points }: пока не знаем, прошёл ли он. Загляните в «Мои призы» позже или обменяйте тот же приз ещё раз — дважды баллы не спишутся.
prizes-mine-title = Мои призы:
prizes-mine-line = <b>{ $name }</b> — код <code>{ $code }</code>, действует до { $until } (получен { $date })
prizes-mine-empty = Призов пока нет. Баллы можно обменять на сувениры, промокоды и билеты — кнопка «Обменять».
