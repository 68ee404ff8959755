"""Registrations with carriers that deliver calls only to a registered contact.

Some carriers send a trunk's calls only to a contact that has registered with
them (interop case C13): the router then keeps a registration at the trunk's
termination URI with the trunk's credentials (RFC 3261 §10.2), answers the
registrar's digest challenge (§22.2), and refreshes the binding before it
expires. Calls for such a trunk name the registration's username in the
Request-URI and the dialed number in To; :mod:`router.routing` handles that.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from router.numbers.models import Trunk
from router.numbers.store import Store, StoreError
from router.sip.digest import DigestError, answer_challenge
from router.sip.errors import SipParseError
from router.sip.message import Headers, Request, Response
from router.sip.transaction import Peer, new_branch
from router.sip.uri import SipUri, format_host, parse_uri

__all__ = ["REQUESTED_EXPIRES", "Registrar", "TrunkRegistration"]

log = structlog.get_logger("router.registration")

# Binding lifetime we ask for; registrars often shorten it (RFC 3261 §10.2.1).
REQUESTED_EXPIRES = 3600
# Retry delays after a failure grow to this cap, so a dead registrar is not hammered.
MAX_RETRY_S = 300.0
# How often the set of trunks that register is read again from the store.
RELOAD_S = 60.0

SendRequest = Callable[[Request, Peer, Callable[[Response | None], None]], None]


@dataclass
class TrunkRegistration:
    """One trunk's binding at its registrar."""

    trunk: Trunk
    username: str
    password: str
    registrar: SipUri
    call_id: str = field(default_factory=lambda: secrets.token_hex(12) + "@sip-router")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(6))
    cseq: int = 0
    registered: bool = False
    expires: int = 0
    failures: int = 0


class Registrar:
    """Keeps every trunk with ``register`` on registered."""

    def __init__(
        self,
        store: Store,
        send: SendRequest,
        *,
        advertise: str,
        port: int,
        transport: str = "UDP",
    ) -> None:
        self.store = store
        self.send = send
        self.advertise = advertise
        self.port = port
        self.transport = transport
        self.registrations: dict[str, TrunkRegistration] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._reloader: asyncio.Task[None] | None = None

    @property
    def usernames(self) -> dict[str, str]:
        """Registration username -> trunk_id, for every trunk that registers."""
        return {r.username: trunk_id for trunk_id, r in self.registrations.items()}

    async def start(self) -> None:
        """Register every trunk that asks for it, and keep the list current."""
        await self.reload()
        self._reloader = asyncio.get_running_loop().create_task(self._reload_forever())

    async def close(self) -> None:
        """Stop refreshing (bindings lapse at the registrar by themselves)."""
        tasks = [t for t in (self._reloader, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def reload(self) -> None:
        """Start registering new trunks and stop those that no longer register."""
        try:
            trunks = [
                t for t in await self.store.list_trunks() if t.register and t.username
            ]
        except StoreError as error:
            log.warning("registration_reload_failed", error=str(error))
            return
        wanted = {t.trunk_id: t for t in trunks}
        for trunk_id in set(self._tasks) - set(wanted):
            self._tasks.pop(trunk_id).cancel()
            self.registrations.pop(trunk_id, None)
        for trunk_id, trunk in wanted.items():
            if trunk_id not in self._tasks:
                await self._begin(trunk)

    async def _begin(self, trunk: Trunk) -> None:
        credentials = await self.store.trunk_credentials(trunk.trunk_id)
        if credentials is None or not trunk.termination_uri:
            return
        try:
            uri = parse_uri(trunk.termination_uri)
        except SipParseError:
            log.warning("registration_bad_uri", trunk_id=trunk.trunk_id)
            return
        if not isinstance(uri, SipUri):
            return
        registration = TrunkRegistration(trunk, credentials[0], credentials[1], uri)
        self.registrations[trunk.trunk_id] = registration
        loop = asyncio.get_running_loop()
        self._tasks[trunk.trunk_id] = loop.create_task(
            self._keep_registered(registration)
        )

    async def _reload_forever(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_S)
            await self.reload()

    async def _keep_registered(self, registration: TrunkRegistration) -> None:
        while True:
            expires = await self._register(registration)
            if expires is None:
                registration.registered = False
                registration.failures += 1
                delay = min(2.0**registration.failures, MAX_RETRY_S)
            else:
                registration.registered, registration.failures = True, 0
                registration.expires = expires
                # Refresh well before the binding lapses (half its life, §10.2.4).
                delay = max(expires / 2, 1.0)
            await asyncio.sleep(delay)

    async def _register(self, registration: TrunkRegistration) -> int | None:
        """One REGISTER, answering one challenge; the granted expiry or None."""
        response = await self._send(registration, authorization=None)
        if response is not None and response.status in (401, 407):
            response = await self._answer(registration, response)
        if response is None or not 200 <= response.status < 300:
            status = response.status if response is not None else "timeout"
            log.warning(
                "registration_failed",
                trunk_id=registration.trunk.trunk_id,
                status=status,
            )
            return None
        expires = _granted_expires(response)
        log.info("registered", trunk_id=registration.trunk.trunk_id, expires=expires)
        return expires

    async def _answer(
        self, registration: TrunkRegistration, challenge: Response
    ) -> Response | None:
        name = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        header = challenge.headers.get(name)
        if header is None:
            return None
        try:
            value = answer_challenge(
                header,
                method="REGISTER",
                uri=_registrar_uri(registration.registrar),
                username=registration.username,
                password=registration.password,
            )
        except DigestError as error:
            log.warning("registration_challenge", reason=error.reason)
            return None
        auth_name = (
            "Authorization" if challenge.status == 401 else "Proxy-Authorization"
        )
        return await self._send(registration, authorization=(auth_name, value))

    async def _send(
        self, registration: TrunkRegistration, authorization: tuple[str, str] | None
    ) -> Response | None:
        future: asyncio.Future[Response | None] = (
            asyncio.get_running_loop().create_future()
        )

        def done(response: Response | None) -> None:
            if not future.done():
                future.set_result(response)

        request = self._build(registration, authorization)
        host, port = registration.registrar.host_port()
        transport = (
            registration.registrar.params.get("transport") or self.transport
        ).upper()
        self.send(request, Peer(transport, host, port), done)
        return await future

    def _build(
        self, registration: TrunkRegistration, authorization: tuple[str, str] | None
    ) -> Request:
        # RFC 3261 §10.2: Request-URI names the registrar's domain; To and From
        # the address of record; Contact where calls must be sent.
        registration.cseq += 1
        registrar = registration.registrar
        aor = f"sip:{registration.username}@{format_host(registrar.host)}"
        here = f"{format_host(self.advertise)}:{self.port}"
        headers = Headers()
        headers.add(
            "Via", f"SIP/2.0/{self.transport} {here};branch={new_branch()};rport"
        )
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{aor}>;tag={registration.from_tag}")
        headers.add("To", f"<{aor}>")
        headers.add("Call-ID", registration.call_id)
        headers.add("CSeq", f"{registration.cseq} REGISTER")
        headers.add("Contact", f"<sip:{registration.username}@{here}>")
        headers.add("Expires", str(REQUESTED_EXPIRES))
        if authorization is not None:
            headers.add(*authorization)
        return Request("REGISTER", _registrar_uri(registrar), headers, b"")


def _registrar_uri(registrar: SipUri) -> str:
    port = f":{registrar.port}" if registrar.port else ""
    return f"{registrar.scheme}:{format_host(registrar.host)}{port}"


def _granted_expires(response: Response) -> int:
    """The binding's lifetime: Contact ``expires``, else Expires, else what we asked."""
    for value in response.headers.get_all("Contact"):
        for param in value.split(";")[1:]:
            name, _, number = param.strip().partition("=")
            if name.lower() == "expires" and number.isdigit():
                return int(number)
    header = response.headers.get("Expires")
    if header is not None and header.strip().isdigit():
        return int(header.strip())
    return REQUESTED_EXPIRES
