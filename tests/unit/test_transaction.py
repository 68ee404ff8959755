"""Transaction layer (RFC 3261 §17) driven by a fake clock: no sockets, no sleeps."""

from __future__ import annotations

from router.sip.message import Headers, Request, Response, make_response, parse_message
from router.sip.transaction import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    ClientTransactionTimeout,
    Peer,
    RequestReceived,
    ResponseReceived,
    Timers,
    TransactionLayer,
    new_branch,
)

UDP_ADDRESS = ("127.0.0.1", 5070)
UDP = Peer("UDP", *UDP_ADDRESS)
TCP = Peer("TCP", "127.0.0.1", 40000, connection=object())


def invite(
    branch: str = "z9hG4bK-inv1", method: str = "INVITE", to_tag: str = ""
) -> Request:
    to = "<sip:+14155550100@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    raw = (
        f"{method} sip:+14155550100@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:+14155550111@127.0.0.1>;tag=c1\r\n"
        f"To: {to}\r\n"
        "Call-ID: tx1@127.0.0.1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:+14155550111@127.0.0.1:5070>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(raw)
    assert isinstance(message, Request)
    return message


def statuses(layer: TransactionLayer) -> list[int]:
    sent = [o.message.status for o in layer.outbox if isinstance(o.message, Response)]
    layer.outbox.clear()
    return sent


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def advance_to(self, layer: TransactionLayer, until: float) -> list[object]:
        """Fire every timer up to ``until``, in order, as a real loop would."""
        events: list[object] = []
        while True:
            deadline = layer.next_deadline()
            if deadline is None or deadline > until:
                break
            self.now = deadline
            events.extend(layer.fire_timers(self.now))
        self.now = until
        return events


def test_invite_gets_100_trying_at_once_and_one_event() -> None:
    layer = TransactionLayer()
    events = layer.receive_request(invite(), UDP, 0.0)
    assert [type(e) for e in events] == [RequestReceived]
    assert statuses(layer) == [100]


def test_retransmitted_invite_is_absorbed_and_last_response_resent() -> None:
    layer = TransactionLayer()
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    layer.respond(
        event.transaction, make_response(event.request, 180, to_tag="r1"), 0.1
    )
    statuses(layer)
    assert layer.receive_request(invite(), UDP, 0.5) == []
    assert statuses(layer) == [180]


def test_2xx_is_retransmitted_t1_doubling_to_t2_until_ack() -> None:
    layer, clock = TransactionLayer(), FakeClock()
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    statuses(layer)
    layer.respond(
        event.transaction, make_response(event.request, 200, to_tag="r1"), 0.0
    )
    assert statuses(layer) == [200]

    sent_at = []
    for step in range(1, 120):
        clock.advance_to(layer, step * 0.05)
        if statuses(layer):
            sent_at.append(round(clock.now, 2))
    # T1=0.5: resent at 0.5, 1.5 (+1), 3.5 (+2), 7.5 (+4, capped at T2=4 from then on).
    assert sent_at[:3] == [0.5, 1.5, 3.5]

    ack = invite(branch="z9hG4bK-ack2", method="ACK", to_tag="r1")
    events = layer.receive_request(ack, UDP, clock.now)
    assert [type(e) for e in events] == [AckReceived]
    clock.advance_to(layer, 40.0)
    assert statuses(layer) == []
    assert layer.pending_acks == 0


def test_2xx_without_ack_times_out_after_64_t1() -> None:
    layer, clock = TransactionLayer(), FakeClock()
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    layer.respond(
        event.transaction, make_response(event.request, 200, to_tag="r1"), 0.0
    )
    statuses(layer)
    assert clock.advance_to(layer, 31.9) == []
    retransmissions = statuses(layer)
    # 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5
    assert len(retransmissions) == 10
    events = clock.advance_to(layer, 32.0)
    assert [type(e) for e in events] == [AckTimeout]
    assert clock.advance_to(layer, 100.0) == []
    assert layer.pending_acks == 0 and layer.server_transactions == 0


def test_retransmitted_invite_after_2xx_is_absorbed() -> None:
    layer = TransactionLayer()
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    layer.respond(
        event.transaction, make_response(event.request, 200, to_tag="r1"), 0.0
    )
    statuses(layer)
    assert layer.receive_request(invite(), UDP, 0.2) == []


def test_non_2xx_final_is_resent_with_timer_g_until_ack_then_timer_i() -> None:
    layer, clock = TransactionLayer(), FakeClock()
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    layer.respond(
        event.transaction, make_response(event.request, 404, to_tag="r1"), 0.0
    )
    assert statuses(layer) == [100, 404]
    clock.advance_to(layer, 1.6)
    assert statuses(layer) == [404, 404]  # at 0.5 and 1.5
    ack = invite(method="ACK", to_tag="r1")  # same branch: part of the transaction
    assert layer.receive_request(ack, UDP, clock.now) == []
    clock.advance_to(layer, 6.0)
    assert statuses(layer) == []
    assert layer.server_transactions == 1  # Timer I = T4 = 5 s after the ACK
    clock.advance_to(layer, 6.7)
    assert layer.server_transactions == 0


def test_non_2xx_without_ack_gives_up_at_timer_h() -> None:
    layer, clock = TransactionLayer(), FakeClock()
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    layer.respond(event.transaction, make_response(event.request, 486), 0.0)
    clock.advance_to(layer, 31.0)
    assert layer.server_transactions == 1
    clock.advance_to(layer, 33.0)
    assert layer.server_transactions == 0


def test_non_2xx_over_tcp_is_not_retransmitted() -> None:
    layer, clock = TransactionLayer(), FakeClock()
    (event,) = layer.receive_request(invite(), TCP, 0.0)
    assert isinstance(event, RequestReceived)
    layer.respond(event.transaction, make_response(event.request, 404), 0.0)
    statuses(layer)
    clock.advance_to(layer, 10.0)
    assert statuses(layer) == []


def test_cancel_while_proceeding_answers_200_and_reports_cancel() -> None:
    layer = TransactionLayer()
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    statuses(layer)
    events = layer.receive_request(invite(method="CANCEL"), UDP, 0.3)
    assert [type(e) for e in events] == [CancelReceived]
    assert statuses(layer) == [200]


def test_cancel_after_final_response_has_no_effect() -> None:
    layer = TransactionLayer()
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    layer.respond(
        event.transaction, make_response(event.request, 200, to_tag="r1"), 0.0
    )
    statuses(layer)
    assert layer.receive_request(invite(method="CANCEL"), UDP, 0.3) == []
    assert statuses(layer) == [200]  # RFC 6026 keeps the INVITE transaction


def test_cancel_without_matching_invite_gets_481() -> None:
    layer = TransactionLayer()
    assert layer.receive_request(invite(method="CANCEL"), UDP, 0.0) == []
    assert statuses(layer) == [481]


def test_non_invite_server_resends_final_on_retransmission_until_timer_j() -> None:
    layer, clock = TransactionLayer(), FakeClock()
    bye = invite(branch="z9hG4bK-bye1", method="BYE", to_tag="r1")
    (event,) = layer.receive_request(bye, UDP, 0.0)
    assert isinstance(event, RequestReceived)
    assert statuses(layer) == []  # no 100 for non-INVITE
    layer.respond(event.transaction, make_response(bye, 200), 0.0)
    assert statuses(layer) == [200]
    assert layer.receive_request(bye, UDP, 1.0) == []
    assert statuses(layer) == [200]
    clock.advance_to(layer, 31.9)
    assert layer.server_transactions == 1
    clock.advance_to(layer, 32.1)
    assert layer.server_transactions == 0


def bye_request() -> Request:
    headers = Headers()
    headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={new_branch()}")
    headers.add("From", "<sip:+14155550100@127.0.0.1>;tag=r1")
    headers.add("To", "<sip:+14155550111@127.0.0.1>;tag=c1")
    headers.add("Call-ID", "tx1@127.0.0.1")
    headers.add("CSeq", "2 BYE")
    headers.add("Max-Forwards", "70")
    return Request(
        method="BYE", uri="sip:+14155550111@127.0.0.1:5070", headers=headers, body=b""
    )


def test_client_bye_is_retransmitted_timer_e_and_times_out_at_timer_f() -> None:
    layer, clock = TransactionLayer(), FakeClock()
    outcomes: list[Response | None] = []
    layer.send_request(bye_request(), UDP, 0.0, on_done=outcomes.append)
    assert len(layer.outbox) == 1
    layer.outbox.clear()
    sent = []
    for step in range(1, 700):
        clock.advance_to(layer, step * 0.05)
        if layer.outbox:
            sent.append(round(clock.now, 2))
            layer.outbox.clear()
    # Initial send at 0, then 0.5, 1.5, 3.5, 7.5, 11.5, ... (T2 cap at 4 s).
    assert sent[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert outcomes == [None]
    assert layer.client_transactions == 0


def test_client_bye_stops_on_final_response() -> None:
    layer, clock = TransactionLayer(), FakeClock()
    request = bye_request()
    layer.send_request(request, UDP, 0.0)
    layer.outbox.clear()
    response = make_response(request, 200)
    events = layer.receive_response(response, UDP, 0.2)
    assert [type(e) for e in events] == [ResponseReceived]
    clock.advance_to(layer, 20.0)
    assert layer.outbox == []
    assert layer.client_transactions == 0


def test_timer_f_event_reports_the_transaction() -> None:
    layer, clock = TransactionLayer(Timers(t1=0.1)), FakeClock()
    layer.send_request(bye_request(), TCP, 0.0)
    events = clock.advance_to(layer, 6.5)
    assert [type(e) for e in events] == [ClientTransactionTimeout]


def test_an_ended_transaction_is_freed_before_its_cancelled_timers_come_up() -> None:
    import gc
    import weakref

    layer = TransactionLayer()
    # Another call's 2xx, never ACKed, keeps live timers ahead in the heap.
    (other,) = layer.receive_request(invite(branch="z9hG4bK-inv2"), UDP, 0.0)
    assert isinstance(other, RequestReceived)
    layer.respond(other.transaction, make_response(other.request, 200, to_tag="r2"), 0)
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    busy = make_response(event.request, 486, to_tag="r1")
    layer.respond(event.transaction, busy, 0.1)
    ack = invite(method="ACK", to_tag="r1")
    assert layer.receive_request(ack, UDP, 0.2) == []
    # Timer I (T4) ends the transaction; Timer H, cancelled, is due at 64*T1.
    FakeClock().advance_to(layer, 6.0)
    transaction = weakref.ref(event.transaction)
    del event

    gc.disable()  # freed by reference counting, without the collector
    try:
        assert transaction() is None
    finally:
        gc.enable()


def test_a_completed_non_invite_keeps_answering_retransmissions_after_compacting() -> (
    None
):
    layer = TransactionLayer()
    bye = invite(branch="z9hG4bK-bye1", method="BYE", to_tag="r1")
    (event,) = layer.receive_request(bye, UDP, 0.0)
    assert isinstance(event, RequestReceived)
    layer.respond(event.transaction, make_response(bye, 200), 0.0)
    assert statuses(layer) == [200]

    again = invite(branch="z9hG4bK-bye1", method="BYE", to_tag="r1")
    assert layer.receive_request(again, UDP, 1.0) == []

    assert statuses(layer) == [200]
    assert event.transaction.request.call_id == "tx1@127.0.0.1"
    assert event.transaction.request.to_tag == "r1"


def test_lingering_transactions_leave_the_collector_nothing_to_walk() -> None:
    # Every call leaves an INVITE transaction in Accepted (Timer L) and a BYE
    # one in Completed (Timer J) for 64*T1. Kept as objects, at 400 calls/s
    # they held 330,000 objects that each full collection walked (200 ms).
    import gc

    layer = TransactionLayer()
    for n in range(200):
        (event,) = layer.receive_request(invite(branch=f"z9hG4bK-i{n}"), UDP, 0.0)
        assert isinstance(event, RequestReceived)
        layer.respond(
            event.transaction, make_response(event.request, 200, to_tag="r1"), 0.0
        )
        ack = invite(branch=f"z9hG4bK-a{n}", method="ACK", to_tag="r1")
        assert [type(e) for e in layer.receive_request(ack, UDP, 0.1)] == [AckReceived]
        bye = invite(branch=f"z9hG4bK-b{n}", method="BYE", to_tag="r1")
        (event,) = layer.receive_request(bye, UDP, 0.2)
        assert isinstance(event, RequestReceived)
        layer.respond(event.transaction, make_response(bye, 200), 0.2)
    del event
    layer.outbox.clear()
    assert layer.server_transactions == 400

    gc.collect()
    lingering = list(layer._server.values())
    assert not any(gc.is_tracked(record) for record in lingering)
    # What they still answer: a BYE again gets its 200, an INVITE again nothing.
    again = invite(branch="z9hG4bK-b7", method="BYE", to_tag="r1")
    assert layer.receive_request(again, UDP, 5.0) == []
    (sent,) = layer.outbox
    assert isinstance(sent.message, Response) and sent.message.status == 200
    assert sent.message.call_id == "tx1@127.0.0.1"
    assert (sent.peer.transport, sent.peer.host, sent.peer.port) == (
        "UDP",
        *UDP_ADDRESS,
    )
    layer.outbox.clear()
    assert layer.receive_request(invite(branch="z9hG4bK-i7"), UDP, 5.0) == []
    assert layer.outbox == []
    cancel = invite(branch="z9hG4bK-i7", method="CANCEL")
    assert layer.receive_request(cancel, UDP, 5.0) == []
    assert statuses(layer) == [200]

    FakeClock().advance_to(layer, 33.0)
    assert layer.server_transactions == 1  # the CANCEL's, till 5 s + 64*T1
    FakeClock().advance_to(layer, 38.0)
    assert layer.server_transactions == 0
    assert layer.next_deadline() is None


def test_an_acked_2xx_leaves_no_timer_waiting_for_64_t1() -> None:
    layer = TransactionLayer()
    (event,) = layer.receive_request(invite(), UDP, 0.0)
    assert isinstance(event, RequestReceived)
    layer.respond(
        event.transaction, make_response(event.request, 200, to_tag="r1"), 0.0
    )
    ack = invite(branch="z9hG4bK-ack2", method="ACK", to_tag="r1")
    assert [type(e) for e in layer.receive_request(ack, UDP, 0.1)] == [AckReceived]

    # Only the lingering INVITE transaction ends at 64*T1; the one timer of
    # the 2xx, cancelled by the ACK, was due at T1 and is gone: no timer
    # object stays queued for 64*T1 after each call.
    FakeClock().advance_to(layer, 1.0)
    assert layer.next_deadline() == 32.0
    assert layer._queue.next_deadline() is None
