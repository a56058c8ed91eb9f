# «Настройки»: quiet hours; the quiet hours' digest; meter-window reminders.
# (The kinds' on/off texts, settings-title … settings-urgent-note, are in autopay.ftl.)

settings-quiet-on = 🌙 Тихие часы: { $hours }
settings-quiet-off = 🌙 Тихие часы: выключены
settings-quiet-button = 🌙 Тихие часы
settings-quiet-explain =
    В тихие часы приходят только срочные сообщения. Остальные ждут и приходят одним сообщением, когда тихие часы закончатся. Время московское.
    Выберите время или напишите своё, например 23:00–08:00.
settings-quiet-turn-off = Выключить тихие часы
settings-quiet-not-a-range = Не понял время. Напишите начало и конец тихих часов через дефис, например 23:00–08:00, или выберите кнопку.
settings-quiet-no-such-time = Такого времени нет: часы — от 00 до 23, минуты — от 00 до 59. Например: 23:00–08:00.
settings-quiet-empty = Начало и конец совпадают — так тихие часы не задать. Напишите разное время, например 23:00–08:00, или нажмите «Выключить тихие часы».
settings-meter-window = Напоминания о показаниях счётчиков

notify-digest-title =
    { $count ->
        [one] 🌙 Пока шли тихие часы, пришло { $count } уведомление:
        [few] 🌙 Пока шли тихие часы, пришло { $count } уведомления:
       *[many] 🌙 Пока шли тихие часы, пришло { $count } уведомлений:
    }
notify-digest-item = <b>{ $number }.</b> { $text }

notify-meter-window =
    🔢 Открыт приём показаний счётчиков за { $period }. Ещё не передано:
    { $meters }
notify-meter-window-line = • { $name } № { $serial } — до { $closes_on }
notify-meter-window-more =
    { $count ->
        [one] • и ещё { $count } счётчик
        [few] • и ещё { $count } счётчика
       *[many] • и ещё { $count } счётчиков
    }
notify-meter-window-open = 🔢 Передать показания
