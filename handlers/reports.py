"""«Сообщить о проблеме»: theme (search by words or browse groups), place (a location, a
venue or a typed address), photos (one to five, albums as one step), an optional description,
a review with edit buttons, a duplicate hint, and the report's number and answer date.

The draft lives in the database and is saved after every step, so a restart or /start loses
nothing; coming back offers to continue or discard it."""

from __future__ import annotations

import io
from typing import Any

from aiogram import F
from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message
from aiogram_dialog import Data, Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import (
    Button,
    Cancel,
    Column,
    Row,
    ScrollingGroup,
    Select,
    SwitchTo,
)
from aiogram_dialog.widgets.text import Format
from markupsafe import Markup

from domain.errors import DomainError
from domain.meters import moscow_date
from domain.money import has_foreign_digit
from domain.ports import Place
from domain.reporting import (
    OutsideCity,
    choose_theme,
    discard_draft,
    draft_of,
    duplicates_of,
    find_places,
    follow,
    keep_draft,
    place_at,
    send_report,
    set_place,
)
from domain.reports import (
    MAX_DESCRIPTION,
    MAX_PHOTOS,
    Draft,
    PhotoProblem,
    Point,
    add_photos,
    clean_description,
    search_themes,
)
from handlers.payments import Ctx
from handlers.states import ReportSG
from handlers.texts import button_int, error_key, format_date, whole
from handlers.widgets import HintOnText, Html, Paged, PagerRow, Tr, body

THEMES_PAGE = 8
EDITING = "editing"  # set while a field is changed from the review: its step returns there


async def _draft(ctx: Ctx) -> Draft:
    return await draft_of(ctx.uow, ctx.linked) or Draft()


async def _save_and_next(ctx: Ctx, draft: Draft, step: Any) -> None:
    """Save the draft, then go to `step` — or back to the review when a field was edited.
    The step is saved with the draft: coming back after a restart resumes there."""
    target = ReportSG.review if ctx.manager.dialog_data.pop(EDITING, False) else step
    draft.stage = target.state.split(":")[-1]
    await keep_draft(ctx.uow, ctx.linked, draft, ctx.clock())
    await ctx.manager.switch_to(target, show_mode=ShowMode.SEND)


async def on_start(_data: Data, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    draft = await draft_of(ctx.uow, ctx.linked)
    if draft is not None and (draft.theme_code or draft.photos or draft.point):
        await manager.switch_to(ReportSG.resume)
        return
    await keep_draft(ctx.uow, ctx.linked, Draft(), ctx.clock())


async def resume_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    return {"text": ctx.tr("report-resume") + "\n\n" + _summary(ctx, await _draft(ctx))}


async def on_discard(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    await discard_draft(ctx.uow, ctx.linked)
    await keep_draft(ctx.uow, ctx.linked, Draft(), ctx.clock())
    await manager.switch_to(ReportSG.theme)


async def on_continue(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    draft = await _draft(ctx)
    steps = {s.state.split(":")[-1]: s for s in ReportSG.__states__}
    await manager.switch_to(steps.get(draft.stage, ReportSG.theme))


# --- theme --------------------------------------------------------------------------------


async def on_theme_query(message: Message, _w: MessageInput, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    themes = await ctx.city.themes()
    found = search_themes(themes, message.text or "", moscow_date(ctx.clock()))
    if not found:
        await message.answer(ctx.tr("report-theme-none"))
        return
    manager.dialog_data["results"] = [[t.code, t.name] for t in found]
    await manager.switch_to(ReportSG.theme_results, show_mode=ShowMode.SEND)


async def results_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    return {"themes": dialog_manager.dialog_data.get("results", [])}


async def on_theme(_c: CallbackQuery, _w: Any, manager: DialogManager, code: str) -> None:
    ctx = Ctx(manager)
    theme = next((t for t in await ctx.city.themes() if t.code == code), None)
    if theme is None:
        return  # not a theme the city offers (a forged button)
    draft = await _draft(ctx)
    choose_theme(draft, theme)
    await _save_and_next(ctx, draft, ReportSG.place)


async def groups_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    today = moscow_date(ctx.clock())
    groups = sorted({t.group for t in await ctx.city.themes() if t.in_season(today)})
    return {"groups": [(str(n), g) for n, g in enumerate(groups)]}


async def on_group(_c: CallbackQuery, _w: Any, manager: DialogManager, index: str) -> None:
    data = await groups_getter(manager)
    groups = dict(data["groups"])
    if index in groups:
        manager.dialog_data["group"] = groups[index]
        await manager.switch_to(ReportSG.group_themes)


async def group_themes_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    group = dialog_manager.dialog_data.get("group")
    today = moscow_date(ctx.clock())
    themes = [
        (t.code, t.name) for t in await ctx.city.themes() if t.group == group and t.in_season(today)
    ]
    return {"group": group or "", "themes": sorted(themes, key=lambda item: item[1])}


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
            await message.answer(ctx.tr("input-foreign-digits"))
            return
        else:
            places = await find_places(ctx.uow, ctx.city, ctx.linked, message.text or "")
            if not places:
                await message.answer(ctx.tr("report-address-none"))
                return
            manager.dialog_data["places"] = [[p.address, p.point.lat, p.point.long] for p in places]
            await manager.switch_to(ReportSG.place_pick, show_mode=ShowMode.SEND)
            return
    except OutsideCity:
        await message.answer(ctx.tr("report-outside"))
        return
    except DomainError as error:
        await message.answer(ctx.tr(error_key(error)))
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
    return {"places": [(str(n), p[0]) for n, p in enumerate(places)]}


async def on_pick_place(_c: CallbackQuery, _w: Any, manager: DialogManager, index: str) -> None:
    places = manager.dialog_data.get("places", [])
    number = button_int(index)
    if number is None or number >= len(places):
        return  # a forged or mangled index: nothing is picked
    address, lat, long = places[number]
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
    else:
        await message.answer(tr("report-photo-ask-again"))


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
                length=str(len(message.text or "")),
            )
        )
        return
    draft = await _draft(ctx)
    draft.description = text
    await _save_and_next(ctx, draft, ReportSG.review)


async def on_skip_description(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    await _save_and_next(ctx, await _draft(ctx), ReportSG.review)


# --- review, duplicates, sending ------------------------------------------------------------


def _summary(ctx: Ctx, draft: Draft) -> Markup:
    tr = ctx.tr
    lines = [
        tr("report-review-theme", theme=draft.theme_name or tr("report-review-empty")),
        tr("report-review-place", place=draft.address or tr("report-review-empty")),
        tr("report-review-photos", count=len(draft.photos)),
    ]
    if draft.description:
        # whole: the window pages its text (the description is at most MAX_DESCRIPTION)
        lines.append(tr("report-review-description", description=whole(draft.description)))
    return Markup("\n").join(lines)


async def review_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    draft = await _draft(ctx)
    return {"text": _summary(ctx, draft), "ready": not draft.missing()}


def _edit(step: Any) -> Any:
    async def handler(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
        manager.dialog_data[EDITING] = True
        await manager.switch_to(step)

    return handler


async def on_send(callback: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
    draft = await _draft(ctx)
    if draft.missing():
        return
    if not manager.dialog_data.get("send_anyway"):
        duplicates = await duplicates_of(ctx.city, draft)
        if duplicates:
            dup = duplicates[0]
            manager.dialog_data["duplicate"] = [dup.id, dup.theme_name, dup.address]
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
    except DomainError as error:
        key = error_key(error)
        text = (
            ctx.tr(key) if key != "error-generic" else ctx.tr("report-refused", reason=str(error))
        )
        manager.dialog_data["result"] = text
    else:
        expected = format_date(report.expected_at.date()) if report.expected_at else "—"
        manager.dialog_data["result"] = ctx.tr("report-sent", number=report.id, expected=expected)
    await manager.switch_to(ReportSG.done)


async def duplicate_getter(dialog_manager: DialogManager, **_: Any) -> dict[str, Any]:
    ctx = Ctx(dialog_manager)
    number, theme, address = dialog_manager.dialog_data["duplicate"]
    return {"text": ctx.tr("report-duplicate", number=number, theme=theme, address=address)}


async def on_follow(_c: CallbackQuery, _b: Button, manager: DialogManager) -> None:
    ctx = Ctx(manager)
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
    await discard_draft(ctx.uow, ctx.linked)
    await manager.done()


def build_dialog() -> Dialog:
    select = {"item_id_getter": lambda i: i[0]}
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
                Select(Format("{item[1]}"), id="theme", items="themes", on_click=on_theme, **select)
            ),
            SwitchTo(Tr("report-browse"), id="browse", state=ReportSG.groups),
            SwitchTo(Tr("nav-back"), id="back", state=ReportSG.theme),
            MessageInput(on_theme_query, content_types=ContentType.TEXT),
            getter=results_getter,
            state=ReportSG.theme_results,
        ),
        Window(
            Tr("report-groups"),
            Column(
                Select(Format("{item[1]}"), id="group", items="groups", on_click=on_group, **select)
            ),
            SwitchTo(Tr("nav-back"), id="back", state=ReportSG.theme),
            HintOnText(),
            getter=groups_getter,
            state=ReportSG.groups,
        ),
        Window(
            Html("{group}"),
            ScrollingGroup(
                Select(
                    Format("{item[1]}"), id="gtheme", items="themes", on_click=on_theme, **select
                ),
                id="themes_page",
                width=1,
                height=THEMES_PAGE,
                hide_on_single_page=True,
            ),
            SwitchTo(Tr("nav-back"), id="back", state=ReportSG.groups),
            HintOnText(),
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
            Tr("report-place-pick"),
            Column(
                Select(
                    Format("{item[1]}"),
                    id="place",
                    items="places",
                    on_click=on_pick_place,
                    **select,
                )
            ),
            SwitchTo(Tr("report-place-other"), id="other", state=ReportSG.place),
            HintOnText(),
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
            Tr("report-review"),
            Paged(Html("{text}"), id="review_page"),
            PagerRow("review_page"),
            Button(Tr("report-send"), id="send", on_click=on_send, when=F["ready"]),
            Row(
                Button(Tr("report-edit-theme"), id="e_theme", on_click=_edit(ReportSG.theme)),
                Button(Tr("report-edit-place"), id="e_place", on_click=_edit(ReportSG.place)),
            ),
            Row(
                Button(Tr("report-edit-photos"), id="e_photos", on_click=_edit(ReportSG.photos)),
                Button(
                    Tr("report-edit-description"), id="e_desc", on_click=_edit(ReportSG.description)
                ),
            ),
            Button(Tr("report-discard"), id="discard", on_click=on_discard_at_review),
            Cancel(Tr("report-later")),
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
