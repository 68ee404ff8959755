"""Assemble a running router from settings: store, SIP side and HTTP side."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import signal
from collections.abc import Callable
from contextlib import suppress

import structlog

from router.api.app import create_app
from router.api.server import ApiServer
from router.calls import CallConfig
from router.edge import EdgePolicy
from router.media.bridge import MediaUnavailable
from router.numbers.cache import (
    CachedLookup,
    DirectLookup,
    EmbeddedCachedLookup,
    Lookup,
)
from router.numbers.embedded import EmbeddedStore
from router.numbers.redis_store import RedisStore
from router.numbers.store import Store, StoreError, open_store
from router.overload import OverloadPolicy
from router.records import CallRecorder, default_instance_id
from router.registration import Registrar
from router.server import RouterConfig, SipRouter
from router.settings import Settings, StartupError
from router.transport import TransportLimits

__all__ = ["Router", "StartupError", "run_until_signalled"]

log = structlog.get_logger("router")

# Allocations between two collections of the youngest generation (CPython's
# default is 700). A call allocates thousands of short-lived objects; at 700
# the collector ran several times per call for little gain.
GC_YOUNG_THRESHOLD = 10_000

# 50 frames of 20 ms per second of queued runner audio.
FRAMES_PER_SECOND = 50


class Router:
    """One router instance: its store, its SIP side and its HTTP side."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self._store = store
        self.store: Store | None = store
        self.sip: SipRouter | None = None
        self.http: ApiServer | None = None
        self.lookup: Lookup | None = None
        self.recorder: CallRecorder | None = None
        self.registrar: Registrar | None = None

    async def start(self, before_serving: Callable[[], None] | None = None) -> None:
        """Open the store, bind HTTP, then SIP.

        Args:
            before_serving: called once everything but SIP has started, just
                before the SIP transports open (the CLI settles the heap there).
        """
        settings = self.settings
        if self.store is None:
            self.store = await self._open_store()
        advertise = settings.advertised_address
        config = RouterConfig(
            bind=settings.bind,
            sip_port=settings.sip_port,
            rtp_ports=settings.rtp_port_range,
            max_calls=settings.max_calls,
            udp="udp" in settings.transports,
            tcp="tcp" in settings.transports,
            limits=TransportLimits(
                max_message_size=settings.max_message_size,
                max_tcp_connections=settings.max_tcp_connections,
                tcp_idle_timeout=settings.tcp_idle_timeout,
            ),
            edge=EdgePolicy(
                allow_unlisted_sources=settings.allow_unlisted_sources,
                stealth=settings.stealth_rejects,
                block_threshold=settings.scanner_block_threshold,
                block_duration_s=settings.scanner_block_s,
                challenge_status=settings.digest_challenge,
                realm=settings.digest_realm,
                digest_algorithms=tuple(settings.digest_algorithms),
            ),
            call=CallConfig(
                advertise=advertise,
                default_country=settings.default_country,
                ringing_timeout=settings.ringing_timeout,
                rtp_timeout=settings.rtp_timeout,
                max_queued_frames=int(settings.max_queued_audio_s * FRAMES_PER_SECOND),
            ),
            overload=OverloadPolicy(
                max_setup_calls=settings.overload_max_setup_calls,
                max_loop_lag_s=settings.overload_max_loop_lag_ms / 1000,
                retry_after_s=settings.overload_retry_after_s,
                max_retransmission_share=(
                    settings.overload_max_retransmission_percent / 100
                ),
                max_receive_queue_s=settings.overload_max_receive_queue_ms / 1000,
            ),
            media_workers=settings.media_workers,
            log_level=settings.log_level,
            log_format=settings.log_format,
        )
        self.lookup = self._lookup()
        await self.lookup.start()
        self.recorder = CallRecorder(
            self.store, settings.instance_id or default_instance_id()
        )
        await self.recorder.start()
        self.sip = SipRouter(config, self.store, self.lookup, self.recorder)
        if settings.http_port:
            token = (
                settings.api_token.get_secret_value() if settings.api_token else None
            )
            api = create_app(self.store, operator_token=token, sip=self.sip)
            self.http = ApiServer(api)
            try:
                await self.http.start(settings.http_bind, settings.http_port)
            except OSError as error:
                raise StartupError(
                    f"cannot listen for HTTP on {settings.http_bind}:{settings.http_port} "
                    f"(ROUTER_HTTP_BIND / ROUTER_HTTP_PORT): {error.strerror or error}"
                ) from None
        # SIP last: a call that came while start-up still ran (settling the
        # heap takes tens of milliseconds) would wait for all of it.
        if before_serving is not None:
            before_serving()
        try:
            await self.sip.start()
        except OSError as error:
            raise StartupError(
                f"cannot listen for SIP on {settings.bind}:{settings.sip_port} "
                f"(ROUTER_BIND / ROUTER_SIP_PORT): {error.strerror or error}"
            ) from None
        except MediaUnavailable as error:
            raise StartupError(
                f"cannot start the media workers (ROUTER_MEDIA_WORKERS): {error}"
            ) from None
        self.registrar = Registrar(
            self.store, self.sip.send_request, advertise=advertise, port=self.sip.port
        )
        await self.registrar.start()
        log.info(
            "router_started",
            bind=settings.bind,
            advertise=advertise,
            sip_port=self.sip.port,
            rtp_ports=settings.rtp_ports,
            media_workers=settings.media_workers,
            store="redis" if settings.redis_url else "embedded",
        )
        public = not ipaddress.ip_address(settings.bind).is_loopback
        if public and advertise.startswith("127."):
            log.warning("advertising_loopback", advertise=advertise, bind=settings.bind)
        if public and settings.allow_unlisted_sources:
            log.warning(
                "unlisted_sources_allowed",
                bind=settings.bind,
                detail="any source may place calls; list trunks and turn this off",
            )

    async def _open_store(self) -> Store:
        settings = self.settings
        where = (
            "ROUTER_REDIS_URL / ROUTER_REDIS_PREFIX"
            if settings.redis_url
            else "ROUTER_DB_PATH"
        )
        try:
            store = await open_store(
                redis_url=settings.redis_url,
                db_path=settings.db_path,
                key_prefix=settings.redis_prefix,
                call_retention_s=settings.call_retention_s,
            )
            await store.ping()
        except (StoreError, ValueError, OSError) as error:
            raise StartupError(f"cannot open the store ({where}): {error}") from None
        return store

    def _lookup(self) -> Lookup:
        assert self.store is not None
        if isinstance(self.store, RedisStore) and self.settings.redis_url:
            return CachedLookup(self.store, self.settings.redis_url, self.store.channel)
        if isinstance(self.store, EmbeddedStore):
            return EmbeddedCachedLookup(self.store)
        return DirectLookup(self.store)

    async def stop(self) -> None:
        """Hang up calls, close the listeners and the store we opened."""
        if self.http is not None:
            await self.http.stop()
        if self.registrar is not None:
            await self.registrar.close()
        if self.sip is not None:
            await self.sip.stop()
        if self.lookup is not None:
            await self.lookup.close()
        if self.recorder is not None:
            await self.recorder.close()
        if self.store is not None and self._store is None:
            await self.store.close()


async def run_until_signalled(
    router: Router, on_started: Callable[[], object] | None = None
) -> None:
    """Start ``router``, run until SIGINT or SIGTERM, then stop it cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await router.start(before_serving=settle_heap)
    except BaseException:
        await router.stop()
        raise
    if on_started is not None:
        on_started()
    try:
        await stop.wait()
    finally:
        log.info("router_stopping")
        await router.stop()


def settle_heap() -> None:
    """Move what start-up allocated out of the collector's sight; collect less often.

    The modules, settings and schemas loaded at start-up (about 90,000 objects)
    live as long as the process, yet every full collection walked them all: a
    pause of tens of milliseconds in the middle of calls' set-up. Frozen, they
    are never scanned again (a full collection then takes well under a
    millisecond), and the youngest generation is collected every
    :data:`GC_YOUNG_THRESHOLD` allocations instead of every 700.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)
