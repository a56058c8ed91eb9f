# «Мои счета».

bills-title =
    { $count ->
        [one] У вас { $count } неоплаченный счёт на { $total }:
        [few] У вас { $count } неоплаченных счёта на { $total }:
       *[many] У вас { $count } неоплаченных счетов на { $total }:
    }
bills-item =
    { $title } — { $amount }
    { $provider }, оплатить до { $due }
bills-item-overdue =
    ⚠️ { $title } — { $amount }
    { $provider }, просрочен с { $due }
bills-empty = Неоплаченных счетов нет. Когда город выставит новый счёт, он появится здесь.

## «Благотворительность» under the bills (as on mos.ru).

bills-charity = 💛 Благотворительность: вы помогали { $funds }.
bills-charity-fund = «{ $name }»
bills-charity-again = Помочь ещё раз: { $name }
bills-charity-all = Все фонды
