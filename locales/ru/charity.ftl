# Charity: categories, funds, donations, «Вы помогали».

menu-charity = 💛 Благотворительность
charity-title = Кому помочь? Выберите направление — в каждом несколько проверенных фондов.
charity-category = { $title } ({ $count })
charity-all = Все программы
charity-helped = Вы помогали
charity-funds = Фонды: { $category }
charity-fund-card =
    { $name }

    { $description }

    Программы: { $programs }
charity-report = Отчёт за { $period }
charity-amount = { $amount }
charity-other-amount = Другая сумма
charity-ask-amount = Сколько пожертвовать? Минимум 50 ₽. Напишите сумму, например 200 или 1 500.
charity-too-small = Минимальное пожертвование — 50 ₽. Напишите сумму побольше.
charity-too-large = Такая сумма похожа на опечатку: за раз можно пожертвовать не более { $ceiling }. Напишите сумму ещё раз.
charity-not-a-number = Не понял сумму. Напишите число, например 200 или 1 500,50.
charity-helped-title = Вы помогали:
charity-helped-none = Пожертвований через ваш аккаунт mos.ru пока нет — или фонды, которым вы помогали, больше не принимают пожертвования.
charity-fund-closed = Этот фонд больше не принимает пожертвования — ничего не списано. Выберите другой фонд в «Благотворительность».
charity-helped-line = { $name } — последний раз { $amount }, { $date }
charity-again = Помочь ещё раз — { $amount }
charity-thanks =
    💛 Спасибо! Вы помогли фонду «{ $fund }» — { $total }.
    Квитанция № { $number }
charity-donation-line = Пожертвование фонду «{ $fund }»
