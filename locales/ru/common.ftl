# Shared texts: errors, navigation, account levels.

error-generic = Что-то пошло не так. Мы уже разбираемся — попробуйте ещё раз чуть позже.
error-city-unavailable = Сервис города временно недоступен. Ничего не потеряно — попробуйте ещё раз через пару минут.
error-relink = Вход в аккаунт mos.ru больше не действует. Привяжите аккаунт заново — это займёт минуту.
error-not-found = Не нашли этого в городском сервисе. Возможно, данные уже изменились.
error-not-linked = Сначала привяжите аккаунт mos.ru — кнопка «Привязать аккаунт» в меню.
error-stale-button = Эта кнопка устарела. Вот главное меню.

nav-back = ‹ Назад
pager-prev = ‹
pager-next = ›

level-simple = упрощённая
level-standard = стандартная
level-full = полная
error-too-fast = Не так быстро 🙂 Подождите пару секунд — я всё сделаю.
