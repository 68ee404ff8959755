"""The live calls of a router, found the ways SIP needs to find them.

A request reaches a call by one of three keys:

* its INVITE transaction: CANCEL and the ACK timeout name the INVITE;
* its dialog ID (RFC 3261 §12): Call-ID, our tag and the caller's tag, for
  requests inside the dialog. The early dialog our 180 sets up is indexed from
  the start, so a BYE or re-INVITE sent before our 200 finds the call (§15);
* Call-ID, From tag and CSeq (§8.2.2.2), which tell a merged request: the same
  INVITE come again by another path after forking upstream.

The table also counts the calls still in set-up (routing or ringing), which
the overload limit reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from router.sip.message import Request
from router.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from router.calls import Call

__all__ = ["CallTable"]

DialogKey = tuple[str, str, str]
MergeKey = tuple[str, str, int]


class CallTable:
    """Every call from its INVITE until it has ended."""

    def __init__(self) -> None:
        self._by_invite: dict[int, Call] = {}
        self._by_dialog: dict[DialogKey, Call] = {}
        self._by_merge_key: dict[MergeKey, Call] = {}
        # INVITE transactions (by id) of calls in set-up; a call leaves the set
        # when it is answered or ends.
        self._setting_up: set[int] = set()

    def __len__(self) -> int:
        return len(self._by_invite)

    def values(self) -> Iterator[Call]:
        """The live calls, oldest first."""
        return iter(list(self._by_invite.values()))

    @property
    def setting_up(self) -> int:
        """How many calls are routing or ringing."""
        return len(self._setting_up)

    def is_merged(self, invite: Request) -> bool:
        """Whether a call already has this INVITE, come by another path (§8.2.2.2)."""
        return _merge_key(invite) in self._by_merge_key

    def add(self, call: Call) -> None:
        """Index a new call by its INVITE, its merge key and its early dialog."""
        self._by_invite[id(call.invite)] = call
        self._by_merge_key[_merge_key(call.invite.request)] = call
        self._by_dialog[_early_dialog_key(call)] = call
        self._setting_up.add(id(call.invite))

    def for_invite(self, invite: ServerTransaction) -> Call | None:
        """The call of an INVITE transaction, if it is still live."""
        return self._by_invite.get(id(invite))

    def for_request(self, request: Request) -> Call | None:
        """The call whose dialog (early or confirmed) a request belongs to."""
        key = (request.call_id, request.to_tag or "", request.from_tag or "")
        return self._by_dialog.get(key)

    def answered(self, call: Call) -> None:
        """Index the call by its dialog; its set-up is over."""
        assert call.dialog is not None
        self._by_dialog[call.dialog.key] = call
        self._setting_up.discard(id(call.invite))

    def remove(self, call: Call) -> None:
        """Forget a call that has ended, under every key."""
        self._by_invite.pop(id(call.invite), None)
        self._setting_up.discard(id(call.invite))
        merge_key = _merge_key(call.invite.request)
        if self._by_merge_key.get(merge_key) is call:
            del self._by_merge_key[merge_key]
        self._by_dialog.pop(_early_dialog_key(call), None)
        if call.dialog is not None:
            self._by_dialog.pop(call.dialog.key, None)


def _merge_key(invite: Request) -> MergeKey:
    """Call-ID, From tag and CSeq number: what §8.2.2.2 compares."""
    return (invite.call_id, invite.from_tag or "", invite.cseq[0])


def _early_dialog_key(call: Call) -> DialogKey:
    """The dialog ID (§12) our responses to the call's INVITE set up."""
    request = call.invite.request
    return (request.call_id, call.local_tag, request.from_tag or "")
