# A photographed receipt with a payment QR code.

receipt-too-big = Файл больше 20 МБ — Telegram не даст его скачать. Пришлите фото квитанции обычной фотографией.
receipt-heic = Формат HEIC (фото с iPhone, отправленное файлом) я не читаю. Пришлите квитанцию обычной фотографией — не файлом — или снимком экрана.
receipt-not-image = Это не похоже на картинку. Пришлите фото квитанции или картинку с QR-кодом.
receipt-no-qr =
    Не нашёл QR-код на фото. Как сфотографировать, чтобы получилось:
    • QR-код целиком в кадре и занимает хотя бы четверть снимка;
    • без бликов и тени, при хорошем свете;
    • камера держится ровно, фото не размыто.
    Или введите УИН из квитанции вручную.
receipt-not-payment = Это QR-код, но не платёжный. Платёжный QR обычно напечатан на квитанции рядом с суммой. Можно ввести УИН вручную.
receipt-sbp = Это QR-код Системы быстрых платежей (СБП): его оплачивают в приложении своего банка — отсканируйте его там. Если на квитанции есть УИН, можно ввести его вручную.
receipt-missing = В QR-коде нет реквизитов получателя, по которым можно заплатить. Введите УИН из квитанции вручную.
receipt-enter-uin = Ввести УИН
receipt-summary = Квитанция:
receipt-payee = Получатель: { $payee }
receipt-purpose = Назначение: { $purpose }
receipt-period = Период: { $period }
receipt-payer-code = Код плательщика: { $payer_code }
receipt-amount = Сумма: { $amount }
receipt-no-amount = Сумма в QR-коде не указана.
receipt-pay = Оплатить
receipt-ask-amount = Сколько заплатить? Напишите сумму, например 1500 или 1 500,50.
receipt-bad-amount = Не понял сумму. Напишите число, например 1500 или 1 500,50.
receipt-amount-differs = ⚠️ На квитанции { $receipt }, а город выставил { $city } — к оплате сумма города.
receipt-unusable =
    QR-код прочитан, но по нему нельзя заплатить: { $problems } — с ошибкой или их нет.
    Ничего не списано. Введите УИН из квитанции вручную или оплатите в банке.
receipt-unread = Не смог прочитать: { $problems }.
receipt-uin-needed =
    Среди ваших счетов такого нет, а заплатить по реквизитам нельзя: это платёж в бюджет, и без УИН деньги не зачтутся, а УИН на квитанции не читается. Ничего не списано.
    Введите УИН из квитанции в «Добавить счёт по УИН» или проверьте «Мои счета».
receipt-problem-name = получатель
receipt-problem-personal-acc = расчётный счёт получателя
receipt-problem-bic = БИК банка
receipt-problem-corresp-acc = корреспондентский счёт
receipt-problem-payee-inn = ИНН получателя
receipt-problem-kpp = КПП
receipt-problem-sum = сумма
receipt-problem-period = период
receipt-problem-uin = УИН
receipt-problem-pers-acc = код плательщика (в коде два разных)

# An album of receipts: each picture read, one list answers them all.
receipt-album = Фото в альбоме: { $count }. Вот что я прочитал:
receipt-codes = Платёжных QR-кодов на фото: { $count }. Вот что я прочитал:
receipt-album-receipt = { $number }. { $payee } — { $amount }
receipt-album-problem = { $number }. { $problem }
receipt-album-no-amount = сумма не указана
receipt-album-pay = Оплатить № { $number } — { $amount }
receipt-album-choose = Выберите квитанцию, которую оплатить. Остальные останутся в этом списке.
receipt-album-none = Оплатить по этим фото не получится. Пришлите квитанцию отдельным фото или введите УИН вручную.
receipt-album-no-qr = не нашёл QR-код — переснимите его крупнее, без бликов
receipt-album-not-payment = QR-код не платёжный
receipt-album-sbp = это код СБП — его оплачивают в приложении банка
receipt-album-missing = в QR-коде нет реквизитов получателя
receipt-album-unusable = по QR-коду нельзя заплатить: { $problems } — с ошибкой или их нет
receipt-album-not-image = это не картинка
receipt-album-heic = формат HEIC не читаю — пришлите обычной фотографией
receipt-album-too-big = файл больше 20 МБ
