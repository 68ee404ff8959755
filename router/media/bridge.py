"""The media side of one call, as the call sees it: a :class:`MediaBridge`.

A bridge owns everything a call moves per frame: the RTP socket (a
:class:`~router.media.session.MediaSession`) and the runner's WebSocket (a
:class:`~router.runner.client.RunnerSession`), and it relays between them
itself. The call only steers it: ``open`` (a local RTP port for the SDP
answer), ``configure`` (after every offer/answer), ``connect_runner`` (the
Media Streams ``start``), ``close``; and it hears back the few things that
change the call: the runner hung up, the caller went silent, a digit came.

Because nothing per frame passes through the call, the bridge can live in
another process: :class:`LocalBridge` runs it in this one, and
:class:`~router.media.workers.RemoteBridge` steers a ``LocalBridge`` in a media
worker process with the same interface.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ..runner.client import RunnerSession, RunnerUnavailable, StreamStart
from ..sip.sdp import NegotiatedAudio
from .errors import MediaError
from .pacer import Pacer
from .ports import RtpPortPool
from .session import DEFAULT_INACTIVITY_TIMEOUT, DEFAULT_MAX_QUEUED_FRAMES, MediaSession
from .stats import MediaStats

__all__ = [
    "BridgeEvents",
    "LocalBridge",
    "MediaBridge",
    "MediaUnavailable",
    "PortUsage",
]


class MediaUnavailable(MediaError):
    """The media side cannot carry the call: its worker process is gone or not up."""


class BridgeEvents(Protocol):
    """What a bridge reports to its call. Callbacks run on the call's event loop."""

    def on_runner_closed(self, reason: str) -> None:
        """The runner ended the stream, or the connection to it (or the bridge) was lost.

        Never called after :meth:`MediaBridge.close`, nor while
        :meth:`MediaBridge.connect_runner` is still waiting (it raises instead).
        """

    def on_inactive(self) -> None:
        """No RTP came from the caller for the inactivity timeout."""

    def on_dtmf(self, digit: str) -> None:
        """The caller pressed a key (RFC 4733); it has been sent to the runner already."""


class MediaBridge(Protocol):
    """One call's media: its RTP port and its runner stream, bridged to each other."""

    @property
    def stats(self) -> MediaStats:
        """Counters of the call's RTP stream (final once :meth:`close` returned)."""

    async def open(self) -> int:
        """Bind a local RTP port and start receiving; return the port.

        Raises:
            PortsExhausted: no RTP port is free.
            MediaUnavailable: the media side cannot take calls.
        """

    def configure(self, audio: NegotiatedAudio) -> None:
        """Start media as negotiated, or change it after a re-INVITE.

        Takes effect before anything asked of the bridge afterwards; it may not
        have yet when this returns (see :meth:`configured`).
        """

    async def configured(self) -> None:
        """Return once every :meth:`configure` so far is in effect.

        The call awaits this before its 200, so that the caller's first RTP
        packet finds media running.

        Raises:
            MediaUnavailable: the bridge's worker was lost.
        """

    async def connect_runner(
        self, url: str, start: StreamStart, timeout: float
    ) -> None:
        """Connect to the runner, send ``connected`` and ``start``, then bridge.

        Raises:
            RunnerUnavailable: the runner was not reached within ``timeout``
                seconds, refused the stream, or the bridge was closed meanwhile.
        """

    async def close(self, reason: str) -> None:
        """Send the runner ``stop``, close both sides and give the port back.

        Idempotent; once it returns no callback of :class:`BridgeEvents` fires.
        """


class PortUsage(Protocol):
    """How many RTP ports are handed out, wherever they are bound."""

    @property
    def in_use(self) -> int:
        """Ports held by open bridges."""

    @property
    def capacity(self) -> int:
        """Ports there are in all."""


class _NoEvents:
    """The events of a closed bridge: nobody listens any more."""

    def on_runner_closed(self, reason: str) -> None:
        """Ignored."""

    def on_inactive(self) -> None:
        """Ignored."""

    def on_dtmf(self, digit: str) -> None:
        """Ignored."""


_NO_EVENTS = _NoEvents()


class LocalBridge:
    """A :class:`MediaBridge` in this process: a media session and a runner session.

    The media session's events come here: caller audio, digits and played
    marks go straight to the runner; digits, inactivity and the runner's
    hang-up go on to ``events``.

    Args:
        pool: where the RTP port comes from.
        bind_host: the local IP address to bind RTP on.
        events: the call (or, in a media worker, the link to it).
        inactivity_timeout: seconds without RTP before ``on_inactive``.
        max_queued_frames: bound of the runner audio waiting to be played.
        pacer: the 20 ms clock; the running loop's shared pacer if ``None``.
    """

    def __init__(
        self,
        *,
        pool: RtpPortPool,
        bind_host: str,
        events: BridgeEvents,
        inactivity_timeout: float = DEFAULT_INACTIVITY_TIMEOUT,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
        pacer: Pacer | None = None,
    ) -> None:
        self._events = events
        self.session = MediaSession(
            pool=pool,
            bind_host=bind_host,
            events=self,
            inactivity_timeout=inactivity_timeout,
            max_queued_frames=max_queued_frames,
            pacer=pacer,
        )
        self.runner: RunnerSession | None = None

    @property
    def stats(self) -> MediaStats:
        """Counters of the call's RTP stream."""
        return self.session.stats

    async def open(self) -> int:
        """Bind the RTP port (see :meth:`MediaSession.open`)."""
        return await self.session.open()

    def configure(self, audio: NegotiatedAudio) -> None:
        """Start or change media (see :meth:`MediaSession.configure`)."""
        self.session.configure(audio)

    async def configured(self) -> None:
        """In this process :meth:`configure` takes effect at once."""

    async def connect_runner(
        self, url: str, start: StreamStart, timeout: float
    ) -> None:
        """Open the runner's stream; its audio is played on this bridge's session.

        Raises:
            RunnerUnavailable: as :meth:`RunnerSession.open`, or on ``timeout``.
            MediaError: a runner was connected before.
        """
        if self.runner is not None:
            raise MediaError("connect_runner() on a bridge that has a runner")
        self.runner = RunnerSession(
            url,
            start,
            sink=self.session,
            on_closed=self._events.on_runner_closed,
            connect_timeout=timeout,
        )
        try:
            async with asyncio.timeout(timeout):
                await self.runner.open()
        except TimeoutError:
            raise RunnerUnavailable(f"timed out after {timeout:g}s") from None

    async def close(self, reason: str) -> None:
        """Stop the runner first (it gets ``stop``), then the RTP side."""
        if self.runner is not None:
            await self.runner.close(reason)
        await self.session.close()
        # No event fires any more: let go of the call, so that the call, its
        # bridge and its sessions are freed as soon as the call lets go of
        # them, not at the next full collection.
        self._events = _NO_EVENTS

    # -- MediaEvents of the session: the per-frame path stays in here -----------

    def on_audio(self, ulaw: bytes) -> None:
        """A 20 ms frame from the caller goes to the runner."""
        runner = self.runner
        if runner is not None:
            runner.send_audio(ulaw)

    def on_dtmf(self, digit: str) -> None:
        """A digit from the caller (RFC 4733) goes to the runner and the call."""
        if self.runner is not None:
            self.runner.send_dtmf(digit)
        self._events.on_dtmf(digit)

    def on_mark_played(self, name: str) -> None:
        """Audio up to a runner mark has been played to the caller."""
        if self.runner is not None:
            self.runner.mark_played(name)

    def on_inactive(self) -> None:
        """No RTP from the caller for the inactivity timeout."""
        self._events.on_inactive()

    def __repr__(self) -> str:
        return f"LocalBridge({self.session!r})"
