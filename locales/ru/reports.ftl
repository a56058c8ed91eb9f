# «Наш город»: reporting a problem and following it.

menu-report = 📣 Сообщить о проблеме
menu-my-reports = 🗂 Мои обращения
report-resume = У вас есть неотправленное обращение. Продолжим с того места, где остановились?
report-continue = Продолжить
report-discard = Удалить черновик
report-theme-ask = Что случилось? Напишите парой слов — например, «яма», «фонарь», «мусор» — или выберите раздел.
report-theme-none = Не нашёл такой темы. Выберите раздел ниже или напишите другими словами.
report-theme-pick = Выберите тему обращения:
report-browse = Выбрать из разделов
report-groups = Разделы:
report-place-ask = Где это? Отправьте геопозицию (📎 → Геопозиция) или напишите адрес, например «Тверская ул., 7».
report-photo-before-place = Фото к обращению прикладываются позже, после места. Сначала выберите тему — это фото я не сохранил.
report-refute-photo-after = Сначала напишите комментарий — что не так, — фото можно приложить следующим шагом. Это фото я не сохранил.
report-photo-caption-lost = Подпись к фото тоже не сохранена — напишите её обычным сообщением.
report-photo-elsewhere = Фото к обращению прикладываются на шаге «Фото» — это фото я не сохранил. На проверке обращения нажмите «✏️ Фото» и пришлите его там.
report-place-ask-again = Нужна точка на карте или адрес. Отправьте геопозицию (📎 → Геопозиция) или напишите адрес.
report-address-none = Не нашёл такой адрес в Москве. Проверьте написание или отправьте геопозицию (📎 → Геопозиция).
report-place-pick = Уточните адрес:
report-place-other = Другой адрес
report-outside = Эта точка за пределами города — «Наш город» принимает обращения только по Москве. Отправьте другую точку или напишите адрес.
report-outside-near = Эта точка за пределами города — «Наш город» принимает обращения только по Москве. Ближайший известный адрес в Москве — { $address }.
report-outside-pick = Если проблема там, выберите этот адрес. Если нет — нажмите «Другой адрес» и отправьте точку или адрес в Москве.
report-photos-ask =
    { $required ->
        [yes] Пришлите фото проблемы — для этой темы оно обязательно. Можно до { $max } фото, в том числе альбомом.
       *[other] Пришлите фото проблемы — до { $max } штук, можно альбомом. Если фото нет, нажмите «Пропустить».
    }
report-photos-count = Фото добавлено: { $count } из { $max }. Пришлите ещё или нажмите «Дальше».
report-too-many-photos = Можно приложить не больше { $max } фото — сейчас их { $count }. Лишние не добавил; чтобы заменить, нажмите «Убрать фото».
report-document = Пришлите, пожалуйста, как фото, а не файлом: так город увидит снимок сразу.
report-video = Видео «Наш город» не принимает — пришлите фото.
report-photo-ask-again = Здесь нужны фото проблемы. Пришлите фото или нажмите «Дальше».
report-next = Дальше
report-skip = Пропустить
report-clear-photos = Убрать фото
report-description-ask = Опишите проблему, если хотите (до 2000 знаков), или нажмите «Пропустить».
report-refute-long = Комментарий длиннее { $max } знаков (сейчас { $length }). Сократите его, пожалуйста.
report-description-empty = В сообщении нет видимого текста. Напишите, что случилось, или нажмите «Пропустить».
report-description-long = Описание длиннее { $max } знаков (сейчас { $length }). Сократите его, пожалуйста, — остальное уже сохранено.
report-review = Проверьте обращение:
report-review-theme = Тема: { $theme }
report-review-place = Место: { $place }
report-review-photos = Фото: { $count }
report-review-description = Описание: { $description }
report-review-empty = —
report-send = Отправить
report-edit-theme = ✏️ Тема
report-edit-place = ✏️ Место
report-edit-photos = ✏️ Фото
report-edit-description = ✏️ Описание
report-later = Отправлю позже
report-duplicate =
    Рядом уже есть открытое обращение № { $number } «{ $theme }» ({ $address }).
    Можно следить за ним — вам придёт ответ города, — или отправить своё.
report-duplicate-own =
    Возможно, обращение уже ушло: в городе есть ваше обращение № { $number } «{ $theme }» ({ $address }) — похоже, прошлая отправка дошла, хотя ответ на неё потерялся.
    Можно следить за ним — ответ города придёт сюда, с кнопками «Подтвердить» и «Не устранено», — или отправить изменения как новое обращение.
report-follow = Следить за этим обращением
report-send-anyway = Отправить своё
report-following = Готово: вы следите за обращением № { $number }. Когда город ответит, я напишу.
report-sent = ✅ Обращение № { $number } отправлено. Город ответит до { $expected } — я сообщу, когда что-то изменится.
report-refused = Город не принял обращение: { $reason }
report-refused-generic = Город не принял обращение. Проверьте его и попробуйте отправить ещё раз чуть позже — черновик сохранён.
report-refused-photo-format = Город не принял фото: подходят только снимки в формате JPEG или PNG. Замените фото и отправьте обращение ещё раз — черновик сохранён.
report-refused-photo-size = Город не принял фото: оно больше 10 МБ. Замените его и отправьте обращение ещё раз — черновик сохранён.
report-refused-photo-link = Город не смог получить фото. Уберите их и добавьте заново — черновик сохранён.
report-refused-place = Город не понял, где это. Укажите место ещё раз — геопозицией или адресом.
report-refused-key-reused = Возможно, обращение уже ушло в город, пока черновик менялся. Проверьте «Мои обращения»; если его там нет, отправьте черновик ещё раз.
report-address-long = Это слишком длинно для адреса: { $length } знаков, а нужно не больше { $max }. Напишите улицу и дом, например «Тверская ул., 7», — подробности можно добавить в описание.
report-attr-notice = ℹ️ { $notice }
report-attr-question = ❓ { $question }
report-attr-hint = Подсказка: { $hint }
report-attr-pick = Выберите вариант кнопкой.
report-attr-pick-many = Отметьте один или несколько вариантов и нажмите «Готово».
report-attr-type-number = Напишите число цифрами, например 3.
report-attr-type-text = Напишите ответ сообщением.
report-attr-required = Это обязательный вопрос: без ответа город не примет обращение.
report-attr-optional = Если не знаете, нажмите «Пропустить».
report-attr-current = Сейчас: { $answer }
report-attr-none = Вопросов по этой теме нет.
report-attr-done = Готово
report-attr-keep = Оставить как есть
report-attr-use-buttons = Выберите вариант кнопкой под сообщением.
report-attr-not-number = Здесь нужно число цифрами, например 3. Остальное уже сохранено — напишите число ещё раз.
report-attr-too-long = Ответ длиннее { $max } знаков — сократите его, пожалуйста. Остальное уже сохранено.
report-review-answer = { $question }: { $answer }
report-review-unanswered = ⚠️ Нужен ответ: { $question }
report-review-optional = Можно уточнить: { $questions } — кнопка «Ответы на вопросы».
report-edit-answers = ✏️ Ответы на вопросы
report-answers-missing = Сначала ответьте на обязательные вопросы — без них город не примет обращение.

my-reports-title = Ваши обращения:
my-reports-empty = Обращений пока нет. Нажмите «Сообщить о проблеме» в меню.
my-reports-line = № { $number } · { $theme } · { $status }
report-card =
    Обращение № { $number }
    { $theme }
    Адрес: { $address }
    Статус: { $status }
report-card-expected = Ответ ожидается до { $expected }.
report-card-notes = Ответ города: { $notes }
report-card-own-notes = Ваш комментарий: { $notes }
report-history = История:
report-history-line = { $date } — { $status }{ $text }
report-history-own-line = { $date } — { $status } (ваш комментарий){ $text }
report-confirm = ✅ Подтвердить
report-refute = ❌ Не устранено
report-confirm-until = Подтвердить или оспорить ответ можно до { $until }.
report-confirmed = Спасибо, что подтвердили!
report-confirmed-points =
    { $points ->
        [one] Спасибо, что подтвердили! Начислен { $points } балл — он уже в разделе «Баллы».
        [few] Спасибо, что подтвердили! Начислено { $points } балла — они уже в разделе «Баллы».
       *[many] Спасибо, что подтвердили! Начислено { $points } баллов — они уже в разделе «Баллы».
    }
report-refute-ask = Что не так? Опишите коротко — комментарий уйдёт в городские службы.
report-refute-photo = Добавьте фото, если есть, или нажмите «Без фото».
report-refute-no-photo = Без фото
report-refuted = Обращение вернули в работу. Я сообщу, когда город ответит снова.
report-window-closed = Срок подтверждения истёк: оценить ответ можно в течение 15 дней.
report-already-closed = Это обращение уже закрыто — подтверждать или оспаривать больше нечего.
report-status-moderation = на модерации
report-status-in-work = в работе
report-status-answered = получен ответ
report-status-rejected = отклонено
report-status-closed = закрыто
report-status-returned = возвращено в работу
notify-report-sent = ✅ Обращение № { $number } «{ $theme }» отправлено: город его получил, хотя ответ на отправку тогда не дошёл. Черновик больше не нужен — я сообщу, когда что-то изменится.{ $address }
notify-report-status = Обращение № { $number } «{ $theme }»: { $status }.{ $text }
report-show-full = Показать полностью
report-album-not-only-photos = В альбоме не только фото — не добавил ничего из него. Пришлите только фото, без видео и файлов.
report-attr-too-big = Слишком большое число — проверьте, пожалуйста, и напишите ещё раз.
