"""One call's RTP endpoint: a UDP port, the caller's audio in, paced audio out.

A :class:`MediaSession` owns one even port from the pool. Inbound, it hands
each datagram to an :class:`~router.media.receiver.RtpReceiver`, which reports
20 ms μ-law frames and DTMF digits through :class:`MediaEvents`. Outbound, it
hands the runner's audio to an :class:`~router.media.outbound.OutboundStream`,
which decides when each 20 ms frame goes out: at once when the runner's audio
arrives while the stream is due, otherwise on a tick of the shared
:class:`~router.media.pacer.Pacer`, with silence filling every frame period the
runner leaves empty, so the caller always hears a steady stream.

Lifecycle: ``open()`` binds the port, ``configure()`` starts media with the
result of an offer/answer (and again after every re-INVITE), ``close()`` stops
everything and gives the port back.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Protocol

import structlog

from ..addresses import ip_address, is_unspecified
from ..sip.sdp import NegotiatedAudio
from .errors import MediaError, PortsExhausted, UnsupportedMedia
from .outbound import OutboundStream
from .pacer import TICK_INTERVAL, Pacer, default_pacer
from .playout import PlayoutQueue
from .ports import RtpPortPool
from .receiver import Address, RtpReceiver
from .stats import MediaStats
from .udp import SOCKET_BUFFER_SIZE, RtpDatagramProtocol, bind_udp_socket

__all__ = [
    "DEFAULT_INACTIVITY_TIMEOUT",
    "DEFAULT_MAX_QUEUED_FRAMES",
    "SOCKET_BUFFER_SIZE",
    "MediaEvents",
    "MediaSession",
]

# Carriers and PBXs commonly hang up after 30 s without RTP (Asterisk's rtptimeout
# and FreeSWITCH's media timeout are usually set to it).
DEFAULT_INACTIVITY_TIMEOUT = 30.0
# 10 s of 20 ms frames: more than any runner needs to buffer ahead of real time.
DEFAULT_MAX_QUEUED_FRAMES = 500

# RFC 3264 §5.1: the directions in which we send and in which the caller sends.
_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
_WE_SEND = frozenset({"sendrecv", "sendonly"})
_CALLER_SENDS = frozenset({"sendrecv", "recvonly"})
_CODECS = frozenset({"PCMU", "PCMA"})

_log = structlog.get_logger(__name__)


class MediaEvents(Protocol):
    """What a media session reports to its call. Callbacks run on the event loop."""

    def on_audio(self, ulaw: bytes) -> None:
        """One 20 ms frame (160 bytes of μ-law) from the caller."""

    def on_dtmf(self, digit: str) -> None:
        """One key press of the caller: ``0-9 * # A-D``, or ``!`` for a flash."""

    def on_mark_played(self, name: str) -> None:
        """A mark queued with :meth:`MediaSession.mark` has reached the caller."""

    def on_inactive(self) -> None:
        """No RTP came from the caller for the inactivity timeout.

        Reported once per silence: again only if RTP resumes and stops again.
        """


class _NoEvents:
    """The listener of a closed session: nobody listens any more."""

    def on_audio(self, ulaw: bytes) -> None:
        """Ignored."""

    def on_dtmf(self, digit: str) -> None:
        """Ignored."""

    def on_mark_played(self, name: str) -> None:
        """Ignored."""

    def on_inactive(self) -> None:
        """Ignored."""


_NO_EVENTS = _NoEvents()


class MediaSession:
    """One call's RTP endpoint.

    Args:
        pool: where the local port comes from and goes back to.
        bind_host: the local IP address to bind (a literal, IPv4 or IPv6).
        events: receives the caller's audio and digits, played marks and inactivity.
        inactivity_timeout: seconds without RTP from the caller before
            :meth:`MediaEvents.on_inactive` (only while the caller should send).
        max_queued_frames: bound of the playout queue; the oldest frames are
            dropped beyond it.
        pacer: the clock to send on; the running loop's shared pacer if ``None``.

    Raises:
        ValueError: ``bind_host`` is not an IP address, or a limit is not positive.
    """

    def __init__(
        self,
        *,
        pool: RtpPortPool,
        bind_host: str,
        events: MediaEvents,
        inactivity_timeout: float = DEFAULT_INACTIVITY_TIMEOUT,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
        pacer: Pacer | None = None,
    ) -> None:
        if inactivity_timeout <= 0:
            raise ValueError(
                f"inactivity_timeout must be positive, not {inactivity_timeout}"
            )
        bind_address = ip_address(bind_host)
        if bind_address is None:
            raise ValueError(f"bind_host {bind_host!r} is not an IP address")
        self._bind_address = bind_address
        self._pool = pool
        self._events = events
        self._inactivity_timeout = inactivity_timeout
        self._pacer = pacer
        self.stats = MediaStats()
        """Counters of this session."""
        self.local_port = 0
        """The bound RTP port; 0 until :meth:`open` returns."""

        self._receiver = RtpReceiver(
            on_audio=events.on_audio, on_dtmf=events.on_dtmf, stats=self.stats
        )
        self._playout = PlayoutQueue(max_frames=max_queued_frames, stats=self.stats)
        self._outbound = OutboundStream(
            queue=self._playout, stats=self.stats, tick_interval=TICK_INTERVAL
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._connection_lost: asyncio.Future[None] | None = None
        self._closed = False
        self._audio: NegotiatedAudio | None = None
        self._init_outbound_state()
        self._init_inactivity_state()

    def _init_outbound_state(self) -> None:
        self._we_send = False
        self._sdp_target: Address | None = None

    def _init_inactivity_state(self) -> None:
        self._caller_sends = False
        self._packets_from_caller = 0
        self._packets_seen = 0
        self._silent_since: float | None = None
        self._inactivity_reported = False

    @property
    def caller_address(self) -> Address | None:
        """Where the caller's RTP comes from, once latched (symmetric RTP)."""
        return self._receiver.latched_source

    @property
    def next_slot(self) -> float | None:
        """When the next packet is due, on the loop's clock (``None`` before configure).

        Runner audio played from :data:`~router.media.outbound.EARLY_TOLERANCE`
        before it, with nothing queued, goes out at once.
        """
        return self._outbound.next_slot

    @property
    def queued_frames(self) -> int:
        """Frames of runner audio waiting to be played."""
        return self._playout.queued_frames

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> int:
        """Bind an even port from the pool on ``bind_host`` and start receiving.

        Ports someone else already holds are skipped.

        Returns:
            The bound port, also kept in :attr:`local_port`.

        Raises:
            PortsExhausted: no free port of the pool could be bound.
            MediaError: the session is already open or closed.
            OSError: binding failed for another reason than a taken port.
        """
        if self._closed or self._transport is not None:
            raise MediaError("open() on a media session that is open or closed")
        loop = asyncio.get_running_loop()
        sock, port = self._bind_free_port()
        self._connection_lost = loop.create_future()
        protocol = RtpDatagramProtocol(
            self._receive_datagram, self._count_socket_error, self._connection_lost
        )
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: protocol, sock=sock
            )
        except BaseException:
            sock.close()
            self._pool.release(port)
            raise
        self._transport = transport
        self._loop = loop
        self.local_port = port
        return port

    def configure(self, audio: NegotiatedAudio) -> None:
        """Start media as negotiated, or change it after a re-INVITE.

        Follows codec switches (PCMU <-> PCMA), direction changes (hold and
        resume) and a new remote address; a new address also re-opens latching.

        Raises:
            UnsupportedMedia: the codec or direction is not one this layer runs.
            MediaError: the session is not open, or already closed.
        """
        if self._closed or self._transport is None:
            raise MediaError("configure() needs an open media session")
        _check_negotiated(audio)
        previous, self._audio = self._audio, audio

        self._receiver.configure(audio)
        if previous is None or _remote(previous) != _remote(audio):
            self._receiver.unlatch()
        self._configure_outbound(audio)
        self._configure_inactivity(audio)

        if previous is None:
            if self._pacer is None:
                self._pacer = default_pacer()
            self._outbound.start(self._pacer.time())
            self._pacer.register(self)

    def _configure_outbound(self, audio: NegotiatedAudio) -> None:
        # Limitation: we always send 20 ms packets. RFC 4566 §6 makes a=ptime a
        # preference, and G.711 receivers accept 20 ms (RFC 3551 §4.5).
        self._sdp_target = self._target_from_sdp(audio)
        # RFC 3264 §8.4: a c= address of 0.0.0.0 (old-style hold) means "send
        # nothing"; §6: port 0 means the stream was rejected.
        on_hold = is_unspecified(audio.remote_address) or audio.remote_port == 0
        self._we_send = audio.direction in _WE_SEND and not on_hold
        self._outbound.set_codec(audio.payload_type, alaw=audio.codec == "PCMA")

    def _configure_inactivity(self, audio: NegotiatedAudio) -> None:
        # While the caller has no reason to send (inactive, or holding with
        # 0.0.0.0), silence on the wire is not a dead call. Every new offer
        # restarts the clock.
        on_hold = is_unspecified(audio.remote_address)
        self._caller_sends = audio.direction in _CALLER_SENDS and not on_hold
        self._silent_since = None
        self._inactivity_reported = False

    def _target_from_sdp(self, audio: NegotiatedAudio) -> Address | None:
        address = ip_address(audio.remote_address)
        if address is None:
            # Limitation: a host name in c= is not resolved (that would block the
            # loop); audio goes out once the caller's first packet is latched.
            return None
        if address.is_unspecified or audio.remote_port == 0:
            return None
        if address.version != self._bind_address.version:
            return None
        return (str(address), audio.remote_port)

    async def close(self) -> None:
        """Stop media and give the port back; safe to call more than once.

        Once this returns, no callback of :class:`MediaEvents` fires any more, no
        timer or task of this session is left, and the socket is closed.
        """
        if self._closed:
            return
        self._closed = True
        # No event fires any more: let go of the listener (the call's bridge,
        # which holds this session), so neither waits for a full collection.
        self._events = _NO_EVENTS
        self._receiver.detach()
        if self._pacer is not None:
            self._pacer.unregister(self)
        self._playout.clear()
        transport, self._transport = self._transport, None
        if transport is None:
            return
        transport.close()
        try:
            if self._connection_lost is not None:
                await self._connection_lost
        finally:
            # The socket is closed once connection_lost ran, so the port can be
            # bound again by the next session that gets it.
            self._pool.release(self.local_port)

    # -- runner audio ------------------------------------------------------------

    def play(self, ulaw: bytes) -> None:
        """Queue μ-law audio of any length; it is re-cut into 20 ms frames.

        If the stream is due (nothing queued, and the frame period of the last
        packet sent is about over), the first frame goes out at once.
        """
        loop = self._loop
        if self._closed or loop is None:
            if not self._closed:
                self._playout.play(ulaw)  # before open(): it waits for media
            return
        # _target() inlined: this runs for every frame the runner sends.
        target = None
        if self._we_send and self._transport is not None:
            target = self._receiver.latched_source or self._sdp_target
        packet = self._outbound.play(loop.time(), ulaw, sending=target is not None)
        self._after_runner_audio(packet, target)

    def mark(self, name: str) -> None:
        """Call ``on_mark_played(name)`` once all audio queued before it has played.

        With nothing queued the mark is reported at once.
        """
        loop = self._loop
        if self._closed or loop is None:
            if not self._closed:
                self._playout.mark(name)
            return
        target = self._target()
        packet = self._outbound.mark(loop.time(), name, sending=target is not None)
        self._after_runner_audio(packet, target)

    def clear(self) -> list[str]:
        """Drop queued audio at once; return the pending marks' names, in order.

        The returned marks are not reported through ``on_mark_played``.
        """
        return self._playout.clear()

    def _after_runner_audio(self, packet: bytes | None, target: Address | None) -> None:
        if packet is not None and target is not None:
            self._send(packet, target)
        playout = self._playout
        if playout.marks:
            self._report_played_marks()
        # Frames left queued are sent on ticks; the pacer only knew about the
        # silence fill, which is later than the first queued frame's turn.
        if playout.frames:
            pacer = self._pacer
            wake = self._outbound.next_wake
            if pacer is not None and wake is not None:
                pacer.wake(self, wake)

    # -- pacing ------------------------------------------------------------------

    def on_tick(self, now: float) -> float | None:
        """Send a queued frame or fill with silence if it is time; called by the pacer.

        Returns:
            When the session next needs a tick.
        """
        outbound = self._outbound
        # _target() inlined: this runs about once per frame period.
        target = None
        if self._we_send and self._transport is not None:
            target = self._receiver.latched_source or self._sdp_target
        packet = outbound.tick(now, sending=target is not None)
        if packet is not None and target is not None:
            self._send(packet, target)
        if self._playout.marks:
            self._report_played_marks()
        if self._caller_sends:
            self._watch_inactivity(now)
        return outbound.next_wake

    def _target(self) -> Address | None:
        """Where packets go now, or ``None`` when none may be sent."""
        if not self._we_send or self._transport is None:
            return None
        # Before the caller's first packet, send to the SDP address; afterwards
        # to where its packets come from (symmetric RTP, RFC 4961).
        return self._receiver.latched_source or self._sdp_target

    def _send(self, packet: bytes, target: Address) -> None:
        transport = self._transport
        assert transport is not None, "a target is only given with a transport"
        transport.sendto(packet, target)
        stats = self.stats
        stats.packets_out += 1
        stats.bytes_out += len(packet)

    def _report_played_marks(self) -> None:
        while (name := self._playout.pop_played_mark()) is not None:
            self._events.on_mark_played(name)

    def _watch_inactivity(self, now: float) -> None:
        if not self._caller_sends:
            return
        # Counting packets and reading the clock once per tick keeps clock
        # reads off the per-packet path; the timeout is precise to one tick.
        if (
            self._silent_since is None
            or self._packets_from_caller != self._packets_seen
        ):
            self._packets_seen = self._packets_from_caller
            self._silent_since = now
            self._inactivity_reported = False
            return
        if self._inactivity_reported:
            return
        if now - self._silent_since >= self._inactivity_timeout:
            self._inactivity_reported = True
            self._events.on_inactive()

    # -- socket ------------------------------------------------------------------

    def _receive_datagram(self, data: bytes, source: Address) -> None:
        if self._closed:
            return
        stats = self.stats
        stats.packets_in += 1
        stats.bytes_in += len(data)
        if self._receiver.receive(data, source):
            self._packets_from_caller += 1

    def _count_socket_error(self, exc: OSError) -> None:
        self.stats.socket_errors += 1

    def _bind_free_port(self) -> tuple[socket.socket, int]:
        pool = self._pool
        # At least one attempt, so that a full pool raises its own PortsExhausted.
        for _attempt in range(max(pool.capacity - pool.in_use, 1)):
            port = pool.acquire()
            try:
                return bind_udp_socket(self._bind_address, port), port
            except OSError as exc:
                pool.release(port)
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                _log.debug("media.port_taken", port=port, host=str(self._bind_address))
        raise PortsExhausted(
            f"no free RTP port in {pool.low}-{pool.high} could be bound on "
            f"{self._bind_address}"
        )

    def __repr__(self) -> str:
        return f"MediaSession(local_port={self.local_port}, closed={self._closed})"


def _check_negotiated(audio: NegotiatedAudio) -> None:
    if audio.codec not in _CODECS:
        raise UnsupportedMedia(f"codec {audio.codec!r} is neither PCMU nor PCMA")
    if audio.direction not in _DIRECTIONS:
        raise UnsupportedMedia(f"direction {audio.direction!r} is not an SDP direction")
    payload_types = [audio.payload_type, audio.dtmf_payload_type or 0]
    # RFC 3550 §5.1: the payload type field has 7 bits.
    if not all(0 <= payload_type <= 127 for payload_type in payload_types):
        raise UnsupportedMedia(f"payload types {payload_types} do not fit 7 bits")
    if not 0 <= audio.remote_port <= 0xFFFF:
        raise UnsupportedMedia(f"remote port {audio.remote_port} is not a UDP port")


def _remote(audio: NegotiatedAudio) -> tuple[str, int]:
    return (audio.remote_address, audio.remote_port)
