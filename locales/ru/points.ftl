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
points-transfer-confirm = Перевести { $points } фонду «{ $fund }»? Баллы спишутся сразу.
points-transfer-yes = Подтвердить
points-transfer-done = Готово: фонд «{ $fund }» получил { $points }. Осталось { $balance }.
points-transfer-insufficient = Баллов не хватает: у вас { $balance }.
points-count =
    { $count ->
        [one] { $count } балл
        [few] { $count } балла
       *[many] { $count } баллов
    }
pay-epd-points = За ЕПД вернётся { $points } в течение 7 дней.
