# Autopay «по выставленному счёту»: a charge that did not go through. There is no schedule:
# the bill is not tried again, it is the resident's to pay now (the notice has «Оплатить»).
notify-bill-autopay-failed = Автоплатёж ({ $what }) не прошёл три дня подряд: банк отклонил списание. Счёт на { $amount } автоплатёж больше не оплатит — оплатите его сами.
notify-bill-autopay-failed-funds = Автоплатёж ({ $what }) не прошёл три дня подряд: на карте не хватило денег. Счёт на { $amount } автоплатёж больше не оплатит — оплатите его сами.
notify-bill-autopay-failed-canceled = Автоплатёж ({ $what }) не прошёл: платёж отменён, деньги не списаны. Счёт на { $amount } автоплатёж больше не оплатит — оплатите его сами.
notify-bill-autopay-failed-refused = Автоплатёж ({ $what }) не прошёл: город отказал в этом платеже, деньги не списаны. Счёт на { $amount } автоплатёж больше не оплатит — оплатите его сами, если всё верно.
notify-bill-autopay-failed-changed = Автоплатёж ({ $what }) не прошёл: город пересчитывал счёт прямо во время оплаты, деньги не списаны. Проверьте счёт и оплатите его сами.

# The day-before reminder of a bill above its autopay's limit (asked, not paid): sent only if
# the bill is still unpaid then. $when: tomorrow / today / other (the day it is sent).
notify-bill-due-reminder =
    { $when ->
        [tomorrow] ⏰ Напоминаем: завтра, { $due }, срок оплаты счёта
        [today] ⏰ Напоминаем: сегодня, { $due }, последний день оплаты счёта
       *[other] ⏰ Напоминаем: срок оплаты счёта — { $due }
    }: { $title } — { $amount }
notify-bill-due-over-limit = Автоплатёж его не оплатит: это больше его лимита ({ $limit }). Проверьте счёт и оплатите, если всё верно.
