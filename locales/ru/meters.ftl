# Meter readings («Электронный дом»).

menu-meters = 🔢 Показания счётчиков
meters-title = Ваши счётчики:
meters-none = У вашей квартиры нет счётчиков, показания которых принимает город.
meters-line = { $name } № { $serial }: { $last }
meters-last = { $value } { $unit } за { $period }
meters-no-last = показаний ещё не было
meters-sent = ✅ передано за { $period }
meters-window-open = приём до { $closes_on }
meters-window-closed = приём с { $opens_on }
meter-cold-water = Холодная вода
meter-hot-water = Горячая вода
meter-electricity = Электричество
unit-m3 = м³
unit-kwh = кВт·ч
meters-ask =
    { $name } № { $serial }. Прошлое показание: { $last }.
    Напишите текущее показание{ $water ->
        [yes] {" "}— до трёх знаков после запятой, например 123,456
       *[no] {" "}— целым числом, например 15234
    }.
meters-closed = Приём показаний по этому счётчику сейчас закрыт. Он откроется { $opens_on } — я напомню, как будет можно.
meters-not-a-number = Не понял показание. Напишите число, например 123,456.
meters-too-precise = Слишком много знаков после запятой: для воды — до трёх, для электричества — целое число.
meters-below = Показание меньше прошлого ({ $last }) — так не бывает. Проверьте цифры на счётчике.
meters-implausible = Расход { $used } { $unit } за месяц — очень много. Всё верно?
meters-confirm-yes = Да, всё верно
meters-confirm-no = Исправить
meters-accepted = ✅ Показание { $value } { $unit } за { $period } принято.
meters-points = +{ $points } за показания.
meters-no-points = Баллы за этот счётчик в этом месяце уже начислены — исправленное показание принято без баллов.
