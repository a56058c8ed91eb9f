"""«Сообщить о проблеме»: theme (search by words or browse groups), place (a location, a
venue or a typed address), photos (one to five, albums as one step), an optional description,
a review with edit buttons, a duplicate hint, and the report's number and answer date.

The draft lives in the database and is saved after every step, so a restart or /start loses
nothing; coming back offers to continue or discard it.

Theme, group, place and choice buttons carry references (`handlers.buttons.item_ref`), never
the platform's codes or keys: nothing bounds their length for Telegram's 64 bytes of callback
data, and one too long made Telegram refuse the whole message. Nor positions: a tap on an older
message (an earlier search, another question) would pick what the list shown NOW has there. A
reference is looked up in the list shown now; one not there gets the forged-button toast. A
choice's reference is of its question's code and its key, so a choice of another question is
never taken for one of the question asked."""

from __future__ import annotations

import io
from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Data, Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import (
    Button,
    Cancel,
    Column,
    Row,
    Select,
    SwitchTo,
)
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.errors import DomainError, ReportRefused
from domain.meters import moscow_date
from domain.money import has_foreign_digit
from domain.ports import Place
from domain.reporting import (
    AnswersMissing,
    DraftGone,
    OutsideCity,
    came_back_to_draft,
    choose_theme,
    discard_draft,
    draft_of,
    duplicates_of,
    find_places,
    follow,
    keep_draft,
    open_draft,
    place_at,
    send_report,
    set_place,
)
from domain.reports import (
    MAX_ADDRESS,
    MAX_ANSWER,
    MAX_DESCRIPTION,
    MAX_PHOTOS,
    AnswerProblem,
    Draft,
    PhotoProblem,
    Point,
    ThemeQuestion,
    add_photos,
    choose,
    clean_description,
    is_russian,
    notices,
    questions,
    search_themes,
    shown_answer,
    typed_answer,
    unanswered,
)
from domain.typed_text import visible, without_invisible
from handlers.buttons import by_ref, item_ref
from handlers.payments import Ctx
from handlers.states import ReportSG
from handlers.texts import error_text, format_date, whole
from handlers.widgets import (
    HintOnText,
    Html,
    Paged,
    PagerRow,
    ScrollingGroup,
    SelectIds,
    Tr,
    body,
    one_per_row,
)

THEMES_PAGE = 8
EDITING = "editing"  # set while a field is changed from the review: its step returns there
DRAFT_NAME = "draft_name"  # `Draft.draft_id` of the draft this dialog writes


async def _draft(ctx: Ctx) -> Draft:
    """The draft this dialog writes; raises DraftGone (told, then the menu, by
    handlers/errors.py) when it went while the dialog was open."""
    manager = ctx.manager
    name = manager.dialog_data.get(DRAFT_NAME)
    draft = await open_draft(ctx.uow, ctx.linked, name, _own_name(manager))
    _writes(manager, draft)
    return draft


def _own_name(manager: DialogManager) -> str:
    """The name this dialog gives a draft saved before drafts were named: its intent's id,
    the same at every update of this dialog (nothing of an update needs to have been kept)."""
    return f"dialog-{manager.current_context().id}"


def _writes(manager: DialogManager, draft: Draft) -> None:
    """This dialog writes `draft` from now on: a step pressed after it went is told so."""
    if draft.draft_id is not None:
        manager.dialog_data[DRAFT_NAME] = draft.draft_id


def _stage(step: State) -> str:
    """The name a draft keeps of its step: `theme` of `ReportSG:theme`."""
    assert step.state is not None  # a state of a group always has a name
    return step.state.split(":")[-1]


async def _save_and_next(ctx: Ctx, draft: Draft, step: Any) -> None:
    """Save the draft, then go to `step` — or back to the review when a field was edited.
    The step is saved with the draft: coming back after a restart resumes there."""
    target = ReportSG.review if ctx.manager.dialog_data.pop(EDITING, False) else step
    draft.stage = _stage(target)
    await keep_draft(ctx.uow, ctx.linked, draft, ctx.clock())
    await ctx.manager.switch_to(target, show_mode=ShowMode.SEND)


async def on_start(_data: Data, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    draft = await draft_of(ctx.uow, ctx.linked)
    if draft is not None and (draft.theme_code or draft.photos or draft.point):
        await came_back_to_draft(ctx.uow, ctx.linked, ctx.clock())  # reopened: in use now
        await _draft(ctx)  # this dialog writes it (named after it, if it had no name)
        await manager.switch_to(ReportSG.resume)
        return
    await _begin(ctx)


async def _begin(ctx: Ctx) -> None:
    """A new, empty draft, written by this dialog."""
    draft = Draft()
    await keep_draft(ctx.uow, ctx.linked, draft, ctx.clock())
    _writes(ctx.manager, draft)


async def resume_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    draft = await _draft(ctx)
    definition = await _questions_shown(ctx, draft)
    return {"text": ctx.tr("report-resume") + "\n\n" + _summary(ctx, draft, definition)}


async def on_discard(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    await _draft(ctx)  # DraftGone: not this dialog's draft to delete (told, then the menu)
    await discard_draft(ctx.uow, ctx.linked)
    await _begin(ctx)
    await manager.switch_to(ReportSG.theme)


async def on_continue(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    draft = await _draft(ctx)
    steps = {_stage(s): s for s in ReportSG.__states__}
    await manager.switch_to(steps.get(draft.stage, ReportSG.theme))


# --- theme --------------------------------------------------------------------------------


async def on_theme_query(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    themes = await ctx.city.themes()
    found = search_themes(themes, message.text or "", moscow_date(ctx.clock()))
    if not found:  # the groups, never the previous search's list
        manager.dialog_data.pop("results", None)
        await message.answer(ctx.tr("report-theme-none"))
        await manager.switch_to(ReportSG.groups, show_mode=ShowMode.SEND)
        return
    manager.dialog_data["results"] = [[t.code, t.name] for t in found]  # the best three
    await manager.switch_to(ReportSG.theme_results, show_mode=ShowMode.SEND)


async def results_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    results = dialog_manager.dialog_data.get("results", [])
    return {"themes": [(item_ref(code), name) for code, name in results]}


def _shown_code(manager: DialogManager, key: str, ref: str) -> str | None:
    """The theme code whose `item_ref` is `ref` in the list kept under `key` ([code, name]
    pairs); None for a theme not in that list (forged, or of an older list)."""
    shown: list[list[str]] = manager.dialog_data.get(key, [])
    found = by_ref(shown, ref, lambda pair: str(pair[0]))
    return None if found is None else str(found[0])


async def _forged(callback: CallbackQuery, manager: DialogManager) -> None:
    await callback.answer(Ctx(manager).tr.label("error-forged-button"))


async def on_result(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    """A theme found by the search (its item: the theme's `item_ref` among the results)."""
    await _pick_theme(callback, manager, _shown_code(manager, "results", item_id))


async def on_group_theme(
    callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str
) -> None:
    """A theme of the group browsed (its item: the theme's `item_ref` in the group's list)."""
    await _pick_theme(callback, manager, _shown_code(manager, "group_themes", item_id))


async def _pick_theme(callback: CallbackQuery, manager: DialogManager, code: str | None) -> None:
    ctx = Ctx(manager)
    theme = next((t for t in await ctx.city.themes() if t.code == code), None)
    if code is None or theme is None:
        await _forged(callback, manager)  # not a theme shown, or no longer offered
        return
    draft = await _draft(ctx)
    choose_theme(draft, theme)
    await _save_and_next(ctx, draft, ReportSG.place)


async def groups_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    today = moscow_date(ctx.clock())
    groups = sorted({t.group for t in await ctx.city.themes() if t.in_season(today)})
    return {"groups": [(item_ref(g), g) for g in groups]}


async def on_group(callback: CallbackQuery, _w: Any, manager: DialogManager, ref: str) -> None:
    """A group (its item: the group name's `item_ref`, among the groups in season now)."""
    data = await groups_getter(manager)
    group = by_ref((name for _ref, name in data["groups"]), ref, str)
    if group is None:
        await _forged(callback, manager)
        return
    manager.dialog_data["group"] = group
    await manager.switch_to(ReportSG.group_themes)


async def group_themes_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    group = dialog_manager.dialog_data.get("group")
    today = moscow_date(ctx.clock())
    themes = sorted(
        (
            [t.code, t.name]
            for t in await ctx.city.themes()
            if t.group == group and t.in_season(today)
        ),
        key=lambda item: item[1],
    )
    dialog_manager.dialog_data["group_themes"] = themes
    return {"group": group or "", "themes": [(item_ref(code), name) for code, name in themes]}


# --- place --------------------------------------------------------------------------------


async def on_place(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    location = message.location or (message.venue.location if message.venue else None)
    try:
        if location is not None:
            place = await place_at(
                ctx.uow, ctx.city, ctx.linked, Point(location.latitude, location.longitude)
            )
            if message.venue is not None:
                place = Place(address=message.venue.address or place.address, point=place.point)
        elif has_foreign_digit(message.text or ""):  # «д. ١٥»: the city would find nothing
            await message.answer(ctx.tr("report-address-foreign-digits"))
            return
        elif len(visible(message.text or "")) > MAX_ADDRESS:  # not an address: not the city's
            length = str(len(visible(message.text or "")))
            await message.answer(ctx.tr("report-address-long", max=str(MAX_ADDRESS), length=length))
            return
        else:
            typed = without_invisible(message.text or "")  # a soft hyphen copied from a page
            places = await find_places(ctx.uow, ctx.city, ctx.linked, typed)
            if not places:
                await message.answer(ctx.tr("report-address-none"))
                return
            manager.dialog_data["places"] = [[p.address, p.point.lat, p.point.long] for p in places]
            manager.dialog_data["outside"] = False
            await manager.switch_to(ReportSG.place_pick, show_mode=ShowMode.SEND)
            return
    except OutsideCity as outside:
        near = outside.suggestion
        if near is None:
            await message.answer(ctx.tr("report-outside"))
            return
        await message.answer(ctx.tr("report-outside-near", address=near.address))
        manager.dialog_data["places"] = [[near.address, near.point.lat, near.point.long]]
        manager.dialog_data["outside"] = True
        await manager.switch_to(ReportSG.place_pick, show_mode=ShowMode.SEND)
        return
    except DomainError as error:
        await message.answer(error_text(ctx.tr, error))
        return
    await _placed(ctx, place)


async def _placed(ctx: Ctx, place: Place) -> None:
    draft = await _draft(ctx)
    set_place(draft, place)
    await _save_and_next(ctx, draft, ReportSG.photos)


async def on_place_other(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    """A video, a sticker, a file… where a place was expected."""
    await message.answer(Ctx(manager).tr("report-place-ask-again"))


async def places_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    places = dialog_manager.dialog_data.get("places", [])
    return {
        "places": [(item_ref(_place_key(p)), p[0]) for p in places],
        "outside": bool(dialog_manager.dialog_data.get("outside")),
    }


def _place_key(place: list[Any]) -> str:
    """What a place's reference is of: its address and point (places have no id); a new search
    replaces the list, so a button of an older message names its own place or none."""
    address, lat, long = place
    return f"{lat},{long},{address}"


async def on_pick_place(callback: CallbackQuery, _w: Any, manager: DialogManager, ref: str) -> None:
    """A place found (its item: the place's `item_ref` among the places found last)."""
    place = by_ref(manager.dialog_data.get("places", []), ref, _place_key)
    if place is None:
        await _forged(callback, manager)  # forged, or of an earlier search: nothing is picked
        return
    address, lat, long = place
    await _placed(Ctx(manager), Place(address=address, point=Point(lat, long)))


# --- photos -------------------------------------------------------------------------------


async def on_photo(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    album: list[Message] = manager.middleware_data.get("album") or [message]
    if not all(m.photo for m in album):  # an album with a video or a file: all or nothing
        await message.answer(ctx.tr("report-album-not-only-photos"))
        return
    file_ids = [m.photo[-1].file_id for m in album if m.photo]
    draft = await _draft(ctx)
    if add_photos(draft, file_ids) is PhotoProblem.TOO_MANY:
        await message.answer(
            ctx.tr("report-too-many-photos", max=MAX_PHOTOS, count=len(draft.photos))
        )
        return
    await keep_draft(ctx.uow, ctx.linked, draft, ctx.clock())
    manager.show_mode = ShowMode.SEND


async def on_not_photo(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    tr = Ctx(manager).tr
    album: list[Message] = manager.middleware_data.get("album") or [message]
    if any(m.photo for m in album):  # photos with a video or a file: none is added
        await message.answer(tr("report-album-not-only-photos"))
    elif message.document is not None:
        await message.answer(tr("report-document"))
    elif message.video is not None or message.video_note is not None:
        await message.answer(tr("report-video"))
    else:  # names the button the screen has (review 35e: «Дальше» shows after a photo only)
        draft = await _draft(Ctx(manager))
        if draft.photos:
            await message.answer(tr("report-photo-ask-again"))
        elif draft.photo_required:
            await message.answer(tr("report-photo-ask-required"))
        else:
            await message.answer(tr("report-photo-ask-or-skip"))


async def photos_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    draft = await _draft(ctx)
    return {
        "count": len(draft.photos),
        "max": MAX_PHOTOS,
        "required": "yes" if draft.photo_required else "no",
        "can_go_on": bool(draft.photos) or not draft.photo_required,
        "skippable": not draft.photos and not draft.photo_required,
        "has_photos": bool(draft.photos),
    }


async def on_photos_done(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    draft = await _draft(ctx)
    if draft.photo_required and not draft.photos:
        return
    await _save_and_next(ctx, draft, ReportSG.description)


async def on_clear_photos(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    draft = await _draft(ctx)
    draft.photos = []
    await keep_draft(ctx.uow, ctx.linked, draft, ctx.clock())


# --- description --------------------------------------------------------------------------


async def on_description(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    text = clean_description(message.text or "")
    if text is None:
        await message.answer(
            ctx.tr(
                "report-description-long",
                max=str(MAX_DESCRIPTION),  # a string: no thousands separator in «2000»
                length=str(len(visible(message.text or ""))),  # what the limit counts
            )
        )
        return
    if not text:  # only what shows nothing (`visible`): not a description, nothing replaced
        await message.answer(ctx.tr("report-description-empty"))
        return
    draft = await _draft(ctx)
    draft.description = text
    draft.description_message = message.message_id  # an edit of it is told how to change it
    await _after_description(ctx, draft)


async def on_skip_description(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    await _after_description(ctx, await _draft(ctx))


# --- the theme's questions (Open311 service definition attributes) ---------------------------

QUESTION = "question"  # dialog data: the code of the attribute being asked
WALK_ALL = "walk_all"  # dialog data: asking every question (from the review), not only required


async def _questions(ctx: Ctx, draft: Draft) -> list[ThemeQuestion]:
    if draft.theme_code is None:
        return []
    return await ctx.city.service_definition(draft.theme_code)


async def _questions_shown(ctx: Ctx, draft: Draft) -> list[ThemeQuestion]:
    """For a summary: without the city the draft is still shown (sending checks again)."""
    try:
        return await _questions(ctx, draft)
    except DomainError:
        return []


async def _after_description(ctx: Ctx, draft: Draft) -> None:
    """The theme's required questions come after the description; the optional ones are
    offered at the review («Ответы на вопросы»)."""
    missing = unanswered(await _questions(ctx, draft), draft)
    if ctx.manager.dialog_data.get(EDITING) or not missing:
        await _save_and_next(ctx, draft, ReportSG.review)
        return
    ctx.manager.dialog_data[QUESTION] = missing[0].code
    ctx.manager.dialog_data[WALK_ALL] = False
    await _save_and_next(ctx, draft, ReportSG.attributes)


async def _next_question(ctx: Ctx, draft: Draft, current: str) -> None:
    """The question after `current` (only unanswered required ones unless every question is
    being walked through), or the review after the last one."""
    asked = questions(await _questions(ctx, draft))
    codes = [q.code for q in asked]
    rest = asked[codes.index(current) + 1 :] if current in codes else []
    if not ctx.manager.dialog_data.get(WALK_ALL):
        rest = [q for q in rest if q.required and not draft.answers.get(q.code)]
    if rest:
        ctx.manager.dialog_data[QUESTION] = rest[0].code
        await _save_and_next(ctx, draft, ReportSG.attributes)
        return
    ctx.manager.dialog_data.pop(EDITING, None)
    await _save_and_next(ctx, draft, ReportSG.review)


async def _current(ctx: Ctx, draft: Draft) -> ThemeQuestion | None:
    """The question being asked; after a restart (or from the review), the first unanswered
    required one, else the first unanswered one, else the first one."""
    definition = await _questions(ctx, draft)
    asked = questions(definition)
    code = ctx.manager.dialog_data.get(QUESTION)
    found = next((q for q in asked if q.code == code), None)
    if found is None:
        open_ones = [q for q in asked if not draft.answers.get(q.code)]
        found = next(iter(unanswered(definition, draft) + open_ones + asked), None)
        if found is not None:
            ctx.manager.dialog_data[QUESTION] = found.code
    return found


async def question_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    tr = ctx.tr
    draft = await _draft(ctx)
    definition = await _questions(ctx, draft)
    question = await _current(ctx, draft)
    if question is None:
        return {"text": tr("report-attr-none"), "choices": [], "is_list": False}
    lines = [tr("report-attr-notice", notice=n) for n in notices(definition)]
    lines.append(tr("report-attr-question", question=question.description))
    if question.hint:
        lines.append(tr("report-attr-hint", hint=question.hint))
    if question.datatype == "multivaluelist":
        lines.append(tr("report-attr-pick-many"))
    elif question.is_list:
        lines.append(tr("report-attr-pick"))
    elif question.datatype == "number":
        lines.append(tr("report-attr-type-number"))
    else:
        lines.append(tr("report-attr-type-text"))
    lines.append(tr("report-attr-required" if question.required else "report-attr-optional"))
    answer = draft.answers.get(question.code, [])
    if answer and question.datatype != "multivaluelist":
        lines.append(tr("report-attr-current", answer=shown_answer(question, answer)))
    mark = "\N{WHITE HEAVY CHECK MARK} "
    multi = question.datatype == "multivaluelist"
    # A choice's button carries a reference of its question and key, never the key (any length).
    return {
        "text": Markup("\n").join(lines),
        "choices": [
            (
                item_ref(_choice_key(question.code, c.key)),
                (mark if c.key in answer else "") + c.name,
            )
            for c in question.choices
        ],
        "is_list": question.is_list,
        "multi_done": multi and (bool(answer) or not question.required),
        "keep": bool(answer) and not multi,
        "skippable": not answer and not question.required and not multi,
    }


def _choice_key(question_code: str, choice_key: str) -> str:
    """What a choice's reference is of: its question too, so that a choice button of an older
    question never answers the question asked now (keys repeat across questions: «yes»)."""
    return f"{question_code}\n{choice_key}"


async def on_choice(callback: CallbackQuery, _w: Any, manager: DialogManager, item_id: str) -> None:
    """A choice of the question asked now (its item: the `item_ref` of the question's code and
    the choice's key); a choice not offered, or one of another question (an older message),
    gets the toast and changes nothing."""
    ctx = Ctx(manager)
    draft = await _draft(ctx)
    question = await _current(ctx, draft)
    code = question.code if question is not None else ""
    choice = (
        None
        if question is None
        else by_ref(question.choices, item_id, lambda c: _choice_key(code, c.key))
    )
    if question is None or choice is None:
        await _forged(callback, manager)
        return
    if choose(question, draft, choice.key) is not None:
        return  # a key the question no longer offers: nothing changes
    if question.datatype == "multivaluelist":
        await keep_draft(ctx.uow, ctx.linked, draft, ctx.clock())  # toggled: still asking
        return
    await _next_question(ctx, draft, question.code)


async def on_answer_text(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    draft = await _draft(ctx)
    question = await _current(ctx, draft)
    if question is None:
        return
    if question.is_list:
        await message.answer(ctx.tr("report-attr-use-buttons"))
        return
    answer = typed_answer(question, message.text or "")
    if answer is AnswerProblem.FOREIGN_DIGITS:
        await message.answer(ctx.tr("input-foreign-digits"))
    elif answer is AnswerProblem.NOT_A_NUMBER or answer is AnswerProblem.EMPTY:
        await message.answer(ctx.tr("report-attr-not-number"))
    elif answer is AnswerProblem.TOO_BIG:
        await message.answer(ctx.tr("report-attr-too-big"))
    elif answer is AnswerProblem.TOO_LONG:
        limit = MAX_DESCRIPTION if question.datatype == "text" else MAX_ANSWER
        await message.answer(ctx.tr("report-attr-too-long", max=str(limit)))
    elif isinstance(answer, str):
        draft.answers[question.code] = [answer]
        await _next_question(ctx, draft, question.code)


async def on_question_next(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """«Пропустить», «Оставить как есть» or «Готово»: on to the next question."""
    ctx = Ctx(manager)
    draft = await _draft(ctx)
    question = await _current(ctx, draft)
    if question is None:
        await _save_and_next(ctx, draft, ReportSG.review)
        return
    if question.required and not draft.answers.get(question.code):
        return  # a stale button: a required question has no way around
    await _next_question(ctx, draft, question.code)


async def on_question_other(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    await message.answer(Ctx(manager).tr("report-attr-use-buttons"))


async def on_edit_answers(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    """From the review: every question in turn, from the first one (each shows its answer,
    with «Оставить как есть»)."""
    ctx = Ctx(manager)
    asked = questions(await _questions(ctx, await _draft(ctx)))
    if asked:
        manager.dialog_data[QUESTION] = asked[0].code
    manager.dialog_data[WALK_ALL] = True
    await manager.switch_to(ReportSG.attributes)


# --- review, duplicates, sending ------------------------------------------------------------


def _summary(ctx: Ctx, draft: Draft, definition: list[ThemeQuestion] | None = None) -> Markup:
    tr = ctx.tr
    lines = [
        tr("report-review-theme", theme=draft.theme_name or tr("report-review-empty")),
        tr("report-review-place", place=draft.address or tr("report-review-empty")),
        tr("report-review-photos", count=len(draft.photos)),
    ]
    if draft.description:
        # whole: the window pages its text (the description is at most MAX_DESCRIPTION)
        lines.append(tr("report-review-description", description=whole(draft.description)))
    for question in questions(definition or []):
        answer = draft.answers.get(question.code)
        if answer:
            shown = whole(shown_answer(question, answer))  # a text answer may be long: paged
            lines.append(tr("report-review-answer", question=question.description, answer=shown))
        elif question.required:
            lines.append(tr("report-review-unanswered", question=question.description))
    optional = [
        q.description
        for q in questions(definition or [])
        if not q.required and not draft.answers.get(q.code)
    ]
    if optional:
        lines.append(tr("report-review-optional", questions=", ".join(optional)))
    return Markup("\n").join(lines)


async def review_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    try:
        draft = await _draft(ctx)
    except DraftGone as gone:  # drawn after the draft went (sent, its screen lost — review
        # 35e — or deleted): said so with the number its send made, never an empty review
        text = error_text(ctx.tr, gone)
        return {"text": text, "ready": False, "has_questions": False, "gone": True}
    if draft.draft_id == _own_name(dialog_manager):  # named by this dialog: kept named, so
        # a lost send settled by the poll is told by that name too
        await keep_draft(ctx.uow, ctx.linked, draft, ctx.clock())
    else:  # the screen «Отправить» is on: its draft is in use, whenever it was last written
        await came_back_to_draft(ctx.uow, ctx.linked, ctx.clock())
    definition = await _questions_shown(ctx, draft)
    return {
        "text": _summary(ctx, draft, definition),
        "ready": not draft.missing() and not unanswered(definition, draft),
        "has_questions": bool(questions(definition)),
        "gone": False,
    }


async def _draft_or_done(ctx: Ctx) -> Draft | None:
    """The dialog's draft for a final press («Отправить», «Следить»); None when it went — the
    done screen then tells the number of the report its send made (its own result screen
    lost, or a lost send settled), else that it went: never an empty draft sent, never a
    neighbour's report followed after the resident's own went."""
    try:
        return await _draft(ctx)
    except DraftGone as gone:
        ctx.manager.dialog_data["result"] = error_text(ctx.tr, gone)
        await ctx.manager.switch_to(ReportSG.done)
        return None


def _refusal(ctx: Ctx, error: ReportRefused) -> Markup:
    """The city's refusal in Russian: known reasons by their keys, the platform's Russian
    sentences as they are, never its English."""
    keys = {
        "photo_format": "report-refused-photo-format",
        "photo_size": "report-refused-photo-size",
        "photo_link": "report-refused-photo-link",
        "place": "report-refused-place",
        "key_reused": "report-refused-key-reused",
    }
    lines = [ctx.tr(keys[kind]) for kind in error.kinds if kind in keys]
    russian = [part for part in str(error).split("; ") if is_russian(part)]
    if russian:
        lines.append(ctx.tr("report-refused", reason="; ".join(russian)))
    return Markup("\n").join(lines) if lines else ctx.tr("report-refused-generic")


def _edit(step: Any) -> Any:
    async def handler(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
        await _draft(Ctx(manager))  # DraftGone: sent or deleted meanwhile, nothing to edit
        manager.dialog_data[EDITING] = True
        await manager.switch_to(step)

    return handler


async def on_send(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    draft = await _draft_or_done(ctx)
    if draft is None or draft.missing():
        return
    if unanswered(await _questions_shown(ctx, draft), draft):  # a stale «Отправить»
        await callback.answer(ctx.tr.label("report-answers-missing"), show_alert=True)
        manager.dialog_data.pop(QUESTION, None)
        manager.dialog_data[WALK_ALL] = False
        await manager.switch_to(ReportSG.attributes)
        return
    # A key on an unchanged draft means this very send went out (its answer, or its record,
    # was lost): the report it made may be the «open report nearby» now, so it is sent again
    # with that key (the city answers with the report it made), never offered as someone
    # else's. A draft edited since (another place, say) is checked like a new one.
    if not manager.dialog_data.get("send_anyway") and not draft.unchanged_since_sent():
        duplicates = await duplicates_of(ctx.city, draft)
        if duplicates:
            dup = duplicates[0]
            manager.dialog_data["duplicate"] = [dup.id, dup.theme_name, dup.address]
            # The resident's own (a send whose answer was lost, then the draft edited): said
            # so, and followed as theirs (`follow`), not as a neighbour's (review 31b).
            own = dup.account_id == ctx.linked.city_account_id
            manager.dialog_data["duplicate_own"] = own and draft.send_key is not None
            await manager.switch_to(ReportSG.duplicate)
            return
    assert callback.bot is not None
    bot = callback.bot

    async def load(file_id: str) -> tuple[bytes, str]:
        buffer = io.BytesIO()
        await bot.download(file_id, destination=buffer)
        return buffer.getvalue(), "image/jpeg"

    try:
        report = await send_report(ctx.uow, ctx.city, ctx.linked, draft, load, ctx.clock())
    except AnswersMissing:
        manager.dialog_data.pop(QUESTION, None)
        manager.dialog_data[WALK_ALL] = False
        await manager.switch_to(ReportSG.attributes)
        return
    except ReportRefused as refused:
        manager.dialog_data["result"] = _refusal(ctx, refused)
    except DomainError as error:
        manager.dialog_data["result"] = error_text(ctx.tr, error)  # never the platform's words
    else:
        expected = format_date(report.expected_at.date()) if report.expected_at else "—"
        manager.dialog_data["result"] = ctx.tr("report-sent", number=report.id, expected=expected)
    await manager.switch_to(ReportSG.done)


async def duplicate_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    number, theme, address = dialog_manager.dialog_data["duplicate"]
    key = "report-duplicate-own" if dialog_manager.dialog_data.get("duplicate_own") else None
    return {"text": ctx.tr(key or "report-duplicate", number=number, theme=theme, address=address)}


async def on_follow(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    if await _draft_or_done(ctx) is None:
        return
    number = manager.dialog_data["duplicate"][0]
    await follow(ctx.uow, ctx.city, ctx.linked, number, ctx.clock())
    manager.dialog_data["result"] = ctx.tr("report-following", number=number)
    await manager.switch_to(ReportSG.done)


async def on_send_anyway(callback: CallbackQuery, button: Button, manager: DialogManager) -> None:
    manager.dialog_data["send_anyway"] = True
    await on_send(callback, button, manager)


async def done_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"text": Markup(dialog_manager.dialog_data.get("result", ""))}  # a tr text


async def on_discard_at_review(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    await _draft(ctx)  # DraftGone: sent meanwhile (its number told), or deleted already
    await discard_draft(ctx.uow, ctx.linked)
    await manager.done()


def build_dialog() -> Dialog:
    select: SelectIds = {"item_id_getter": lambda i: i[0]}
    return Dialog(
        Window(
            Paged(Html("{text}"), id="resume_page"),
            PagerRow("resume_page"),
            Button(Tr("report-continue"), id="continue", on_click=on_continue),
            Button(Tr("report-discard"), id="discard", on_click=on_discard),
            Cancel(Tr("nav-back")),
            HintOnText(),
            getter=resume_getter,
            state=ReportSG.resume,
        ),
        Window(
            Tr("report-theme-ask"),
            MessageInput(on_theme_query, content_types=ContentType.TEXT),
            SwitchTo(Tr("report-browse"), id="browse", state=ReportSG.groups),
            Cancel(Tr("nav-back")),
            state=ReportSG.theme,
        ),
        Window(
            Tr("report-theme-pick"),
            Column(
                Select(
                    Format("{item[1]}"), id="theme", items="themes", on_click=on_result, **select
                )
            ),
            SwitchTo(Tr("report-browse"), id="browse", state=ReportSG.groups),
            SwitchTo(Tr("nav-back"), id="back", state=ReportSG.theme),
            MessageInput(on_theme_query, content_types=ContentType.TEXT),
            getter=results_getter,
            state=ReportSG.theme_results,
        ),
        Window(
            Tr("report-groups"),
            one_per_row(
                Select(
                    Format("{item[1]}"), id="group", items="groups", on_click=on_group, **select
                ),
                id="group_list",
            ),
            SwitchTo(Tr("nav-back"), id="back", state=ReportSG.theme),
            MessageInput(on_theme_query, content_types=ContentType.TEXT),  # another search
            getter=groups_getter,
            state=ReportSG.groups,
        ),
        Window(
            Html("{group}"),
            ScrollingGroup(
                Select(
                    Format("{item[1]}"),
                    id="gtheme",
                    items="themes",
                    on_click=on_group_theme,
                    **select,
                ),
                id="themes_page",
                width=1,
                height=THEMES_PAGE,
                hide_on_single_page=True,
            ),
            SwitchTo(Tr("nav-back"), id="back", state=ReportSG.groups),
            MessageInput(on_theme_query, content_types=ContentType.TEXT),  # another search
            getter=group_themes_getter,
            state=ReportSG.group_themes,
        ),
        Window(
            Tr("report-place-ask"),
            MessageInput(
                on_place,
                content_types=[ContentType.LOCATION, ContentType.VENUE, ContentType.TEXT],
            ),
            MessageInput(on_place_other),
            Cancel(Tr("nav-back")),
            state=ReportSG.place,
        ),
        Window(
            Tr("report-place-pick", when=~F["outside"]),
            Tr("report-outside-pick", when=F["outside"]),
            one_per_row(
                Select(
                    Format("{item[1]}"),
                    id="place",
                    items="places",
                    on_click=on_pick_place,
                    **select,
                ),
                id="place_list",
            ),
            SwitchTo(Tr("report-place-other"), id="other", state=ReportSG.place),
            # Another point or address sent instead of a pick is taken as at the place step
            # (the outside-Moscow answer invites it: review 31b).
            MessageInput(
                on_place,
                content_types=[ContentType.LOCATION, ContentType.VENUE, ContentType.TEXT],
            ),
            MessageInput(on_place_other),
            getter=places_getter,
            state=ReportSG.place_pick,
        ),
        Window(
            Tr("report-photos-ask", when=~F["has_photos"]),
            Tr("report-photos-count", when=F["has_photos"]),
            MessageInput(on_photo, content_types=ContentType.PHOTO),
            MessageInput(on_not_photo),
            Button(Tr("report-next"), id="next", on_click=on_photos_done, when=F["has_photos"]),
            Button(Tr("report-skip"), id="skip", on_click=on_photos_done, when=F["skippable"]),
            Button(
                Tr("report-clear-photos"),
                id="clear",
                on_click=on_clear_photos,
                when=F["has_photos"],
            ),
            Cancel(Tr("nav-back")),
            getter=photos_getter,
            state=ReportSG.photos,
        ),
        Window(
            Tr("report-description-ask"),
            MessageInput(on_description, content_types=ContentType.TEXT),
            Button(Tr("report-skip"), id="skip", on_click=on_skip_description),
            Cancel(Tr("nav-back")),
            state=ReportSG.description,
        ),
        Window(
            *body("text", "reports_question"),
            one_per_row(
                Select(
                    Format("{item[1]}"),
                    id="choice",
                    items="choices",
                    on_click=on_choice,
                    **select,
                ),
                when=F["is_list"],
                id="choice_list",
            ),
            MessageInput(on_answer_text, content_types=ContentType.TEXT),
            MessageInput(on_question_other),
            Button(
                Tr("report-attr-done"), id="q_done", on_click=on_question_next, when="multi_done"
            ),
            Button(Tr("report-attr-keep"), id="q_keep", on_click=on_question_next, when="keep"),
            Button(Tr("report-skip"), id="q_skip", on_click=on_question_next, when="skippable"),
            Cancel(Tr("nav-back")),
            getter=question_getter,
            state=ReportSG.attributes,
        ),
        Window(
            Tr("report-review", when=~F["gone"]),
            Paged(Html("{text}"), id="review_page"),
            PagerRow("review_page"),
            Button(Tr("report-send"), id="send", on_click=on_send, when=F["ready"]),
            Row(
                Button(Tr("report-edit-theme"), id="e_theme", on_click=_edit(ReportSG.theme)),
                Button(Tr("report-edit-place"), id="e_place", on_click=_edit(ReportSG.place)),
                when=~F["gone"],
            ),
            Row(
                Button(Tr("report-edit-photos"), id="e_photos", on_click=_edit(ReportSG.photos)),
                Button(
                    Tr("report-edit-description"), id="e_desc", on_click=_edit(ReportSG.description)
                ),
                when=~F["gone"],
            ),
            Button(
                Tr("report-edit-answers"),
                id="e_answers",
                on_click=on_edit_answers,
                when="has_questions",
            ),
            Button(
                Tr("report-discard"), id="discard", on_click=on_discard_at_review, when=~F["gone"]
            ),
            Cancel(Tr("report-later"), when=~F["gone"]),
            Cancel(Tr("nav-back"), id="gone_back", when=F["gone"]),
            HintOnText(),
            getter=review_getter,
            state=ReportSG.review,
        ),
        Window(
            *body("text", "reports_text_1"),
            Button(Tr("report-follow"), id="follow", on_click=on_follow),
            Button(Tr("report-send-anyway"), id="anyway", on_click=on_send_anyway),
            SwitchTo(Tr("nav-back"), id="back", state=ReportSG.review),
            HintOnText(),
            getter=duplicate_getter,
            state=ReportSG.duplicate,
        ),
        Window(
            *body("text", "reports_text_2"),
            Cancel(Tr("pay-done")),
            HintOnText(),
            getter=done_getter,
            state=ReportSG.done,
        ),
        on_start=on_start,
        name="reports",
    )
