"""The live-call table: found by INVITE, by dialog (early and confirmed), by merge key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from router.call_table import CallTable
from router.sip.message import Request, parse_message
from router.sip.transaction import (
    Peer,
    RequestReceived,
    ServerTransaction,
    TransactionLayer,
)

if TYPE_CHECKING:
    from router.calls import Call

UDP = Peer("UDP", "127.0.0.1", 5070)


def request(
    method: str = "INVITE", *, to_tag: str = "", cseq: int = 1, branch: str = "b1"
) -> Request:
    to = "<sip:+14155550100@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    raw = (
        f"{method} sip:+14155550100@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{branch}\r\n"
        "From: <sip:+14155550111@127.0.0.1>;tag=caller\r\n"
        f"To: {to}\r\n"
        "Call-ID: table@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(raw)
    assert isinstance(message, Request)
    return message


def transaction(invite: Request) -> ServerTransaction:
    (event,) = TransactionLayer().receive_request(invite, UDP, 0.0)
    assert isinstance(event, RequestReceived)
    return event.transaction


@dataclass
class FakeDialog:
    key: tuple[str, str, str]


@dataclass
class FakeCall:
    """What the table reads of a call."""

    invite: ServerTransaction
    local_tag: str = "ours"
    dialog: FakeDialog | None = None


def new_call(invite: Request | None = None) -> FakeCall:
    return FakeCall(transaction(invite or request()))


def test_a_new_call_is_found_by_its_invite_and_its_early_dialog() -> None:
    table, call = CallTable(), new_call()
    table.add(cast("Call", call))

    assert table.for_invite(call.invite) is call
    # RFC 3261 §15: a BYE on the early dialog our 180 set up finds the call.
    assert table.for_request(request("BYE", to_tag="ours", cseq=2)) is call
    assert table.for_request(request("BYE", to_tag="other", cseq=2)) is None
    assert len(table) == 1 and table.setting_up == 1


def test_the_same_invite_by_another_path_is_a_merged_request() -> None:
    table = CallTable()
    table.add(cast("Call", new_call()))

    # §8.2.2.2: same Call-ID, From tag and CSeq, another branch.
    assert table.is_merged(request(branch="b2"))
    assert not table.is_merged(request(branch="b2", cseq=2))


def test_an_answered_call_is_found_by_its_dialog_and_leaves_set_up() -> None:
    table, call = CallTable(), new_call()
    table.add(cast("Call", call))
    call.dialog = FakeDialog(("table@127.0.0.1", "ours", "caller"))

    table.answered(cast("Call", call))

    assert table.for_request(request("BYE", to_tag="ours", cseq=2)) is call
    assert table.setting_up == 0 and len(table) == 1


def test_an_ended_call_is_forgotten_under_every_key() -> None:
    table, call = CallTable(), new_call()
    table.add(cast("Call", call))
    call.dialog = FakeDialog(("table@127.0.0.1", "ours", "caller"))
    table.answered(cast("Call", call))

    table.remove(cast("Call", call))

    assert table.for_invite(call.invite) is None
    assert table.for_request(request("BYE", to_tag="ours", cseq=2)) is None
    assert not table.is_merged(request(branch="b2"))
    assert len(table) == 0 and table.setting_up == 0 and list(table.values()) == []


def test_an_ended_call_leaves_a_newer_call_with_its_merge_key_alone() -> None:
    table, first = CallTable(), new_call()
    second = FakeCall(transaction(request(branch="b2")), local_tag="theirs")
    table.add(cast("Call", first))
    table.add(cast("Call", second))

    table.remove(cast("Call", first))

    assert table.is_merged(request(branch="b3"))
    assert list(table.values()) == [second]
