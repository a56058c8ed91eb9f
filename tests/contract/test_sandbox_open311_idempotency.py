"""`POST /open311/v2/requests.json` with the `Idempotence-Key` extension: a repeat gets the
request made before (200), another form under the same key is refused (422), a refused
request leaves its key free, a bad key is a 400."""

from __future__ import annotations

from .sandbox_client import OPEN311, OPEN311_KEY, Answer, ContractClient

LIFT_FORM = [
    ("api_key", OPEN311_KEY),
    ("service_code", "house-00"),  # replaced below by the lift's code
    ("lat", "55.7577"),
    ("long", "37.6107"),
    ("account_id", "C-100003"),
    ("attribute[entrance]", "3"),
]


async def _lift_code(city: ContractClient) -> str:
    answer = await city.request("GET", f"{OPEN311}/services.json")
    return next(s["service_code"] for s in answer.body if s["service_name"] == "Не работает лифт")


async def _post(city: ContractClient, form: list[tuple[str, str]], key: str) -> Answer:
    return await city.request(
        "POST", f"{OPEN311}/requests.json", data=form, headers={"Idempotence-Key": key}
    )


async def test_a_repeat_gets_the_same_request(city: ContractClient) -> None:
    form = [(k, await _lift_code(city) if k == "service_code" else v) for k, v in LIFT_FORM]
    first = await _post(city, form, "draft-1")
    again = await _post(city, form, "draft-1")
    other = await _post(city, form, "draft-2")

    assert (first.status, again.status, other.status) == (201, 200, 201)
    ids = [a.body[0]["service_request_id"] for a in (first, again, other)]
    assert ids[0] == ids[1] != ids[2]


async def test_another_form_under_the_key_is_refused(city: ContractClient) -> None:
    form = [(k, await _lift_code(city) if k == "service_code" else v) for k, v in LIFT_FORM]
    assert (await _post(city, form, "k-1")).status == 201
    changed = [(k, "4" if k == "attribute[entrance]" else v) for k, v in form]
    answer = await _post(city, changed, "k-1")
    assert answer.status == 422
    assert "Idempotence-Key" in answer.body[0]["description"]


async def test_a_refused_request_leaves_its_key_free(city: ContractClient) -> None:
    code = await _lift_code(city)
    form = [(k, code if k == "service_code" else v) for k, v in LIFT_FORM]
    without_entrance = [(k, v) for k, v in form if k != "attribute[entrance]"]
    refused = await _post(city, without_entrance, "k-2")
    assert refused.status == 400
    assert "Номер подъезда" in refused.body[0]["description"]
    assert (await _post(city, form, "k-2")).status == 201


async def test_a_bad_key_is_refused(city: ContractClient) -> None:
    code = await _lift_code(city)
    form = [(k, code if k == "service_code" else v) for k, v in LIFT_FORM]
    assert (await _post(city, form, "not a key!")).status == 400
