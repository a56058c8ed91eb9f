# A photographed receipt with a payment QR code.

receipt-too-big = Файл больше 20 МБ — Telegram не даст его скачать. Пришлите фото квитанции обычной фотографией.
receipt-not-image = Это не похоже на картинку. Пришлите фото квитанции или картинку с QR-кодом.
receipt-no-qr =
    Не нашёл QR-код на фото. Как сфотографировать, чтобы получилось:
    • QR-код целиком в кадре и занимает хотя бы четверть снимка;
    • без бликов и тени, при хорошем свете;
    • камера держится ровно, фото не размыто.
    Или введите УИН из квитанции вручную.
receipt-not-payment = Это QR-код, но не платёжный. Платёжный QR обычно напечатан на квитанции рядом с суммой. Можно ввести УИН вручную.
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
receipt-ask-amount = Сколько заплатить? Напишите сумму, например 1500 или 1 500,50.
receipt-bad-amount = Не понял сумму. Напишите число, например 1500 или 1 500,50.
receipt-amount-differs = ⚠️ На квитанции { $receipt }, а город выставил { $city } — к оплате сумма города.
receipt-one-at-a-time = Квитанции присылайте по одной: я прочитал только первую из альбома. Остальные пришлите отдельными фото.
receipt-unusable =
    QR-код прочитан, но по нему нельзя заплатить: { $problems } — с ошибкой или их нет.
    Ничего не списано. Введите УИН из квитанции вручную или оплатите в банке.
receipt-unread = Не смог прочитать: { $problems }.
receipt-problem-name = получатель
receipt-problem-personal-acc = расчётный счёт получателя
receipt-problem-bic = БИК банка
receipt-problem-corresp-acc = корреспондентский счёт
receipt-problem-payee-inn = ИНН получателя
receipt-problem-kpp = КПП
receipt-problem-sum = сумма
receipt-problem-period = период
receipt-problem-uin = УИН
