"""Router settings: one pydantic-settings model for env, config file and CLI.

Precedence, highest first: command-line options, ``ROUTER_*`` environment
variables, the TOML config file (``--config`` / ``ROUTER_CONFIG``), defaults.
A bad value stops start-up with a message naming the setting.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

__all__ = [
    "ConfigError",
    "Settings",
    "StartupError",
    "load_settings",
    "primary_address",
    "unknown_variables",
]


# Media workers are processes with an interpreter each (tens of MB); more than
# a few per core only adds switching. 256 is past the cores of any one host.
MAX_MEDIA_WORKERS = 256


Transport = Literal["udp", "tcp"]
DigestAlgorithm = Literal["SHA-256", "MD5"]


def _default_transports() -> list[Transport]:
    return ["udp", "tcp"]


def _default_digest_algorithms() -> list[DigestAlgorithm]:
    # RFC 8760 §2.4: the strongest first.
    return ["SHA-256", "MD5"]


class ConfigError(Exception):
    """A setting has a bad value; the message names the setting."""


class StartupError(Exception):
    """The router cannot start (a port is taken, …); the message names the setting."""


class Settings(BaseSettings):
    """Everything the router can be configured with."""

    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="forbid")

    bind: str = Field("0.0.0.0", description="Address the SIP and RTP sockets bind to.")
    advertise: str | None = Field(
        None,
        description="IP address put in Via, Contact and SDP; default: the bind address, "
        "or the host's primary address when bound to all addresses.",
    )
    sip_port: int = Field(5060, ge=1, le=65535)
    transports: Annotated[list[Transport], NoDecode] = Field(
        default_factory=_default_transports
    )
    rtp_ports: str = Field(
        "10000-20000", description="RTP port range LO-HI (even ports)."
    )
    media_workers: int = Field(
        0,
        ge=0,
        le=MAX_MEDIA_WORKERS,
        description="Processes that carry calls' media (RTP and runner streams), "
        "one per core; 0 keeps media in the router's process. The RTP range is "
        "split between them.",
    )

    redis_url: str | None = None
    redis_prefix: str = "sip-router:"
    db_path: str | None = None

    default_country: str | None = Field(
        None, description="ISO 3166-1 alpha-2 country for national-format numbers."
    )
    ringing_timeout: float = Field(
        10.0, gt=0, description="Seconds to reach the runner."
    )
    rtp_timeout: float = Field(
        30.0, gt=0, description="Seconds without RTP before BYE."
    )
    max_calls: int = Field(1000, ge=1)
    overload_max_setup_calls: int = Field(
        200,
        ge=1,
        description="Calls in set-up (routing or ringing) at once past which new "
        "INVITEs are answered 503 with Retry-After.",
    )
    overload_max_loop_lag_ms: float = Field(
        100.0,
        ge=0,
        le=60_000,
        description="Event-loop lag in milliseconds past which new INVITEs are "
        "answered 503 with Retry-After; 0 turns the check off.",
    )
    overload_max_retransmission_percent: float = Field(
        5.0,
        ge=0,
        le=100,
        description="Share, in percent, of retransmissions among the requests of "
        "the last second past which new INVITEs are answered 503 with "
        "Retry-After; 0 turns the check off.",
    )
    overload_max_receive_queue_ms: float = Field(
        300.0,
        ge=0,
        le=60_000,
        description="Estimated wait, in milliseconds, of requests in the SIP socket's "
        "receive queue past which new INVITEs are answered 503 with Retry-After; "
        "0 turns the check off.",
    )
    overload_retry_after_s: int = Field(
        2,
        ge=1,
        le=3600,
        description="Retry-After, in seconds, of the 503 that refuses a call in overload.",
    )
    max_queued_audio_s: float = Field(10.0, gt=0, le=300)
    max_message_size: int = Field(65_535, ge=1500, le=65_535)
    max_tcp_connections: int = Field(1024, ge=1)
    tcp_idle_timeout: float = Field(300.0, gt=0)

    allow_unlisted_sources: bool = Field(
        False,
        description="Accept INVITEs from sources that match no trunk (demo, labs).",
    )
    stealth_rejects: bool = Field(
        False,
        description="Drop INVITEs from unlisted sources instead of answering 403.",
    )
    scanner_block_threshold: int = Field(
        10, ge=1, description="Rejects before a block."
    )
    scanner_block_s: float = Field(
        600.0, ge=0, description="How long a source stays blocked."
    )
    digest_realm: str = Field("sip-router", min_length=1)
    digest_challenge: Literal[401, 407] = 401
    digest_algorithms: Annotated[list[DigestAlgorithm], NoDecode] = Field(
        default_factory=_default_digest_algorithms,
        description="Digest algorithms offered, in order (comma-separated in the env).",
        min_length=1,
    )

    instance_id: str | None = Field(
        None,
        description="Name of this instance in call records (default: host-pid-random).",
    )

    http_bind: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    api_token: SecretStr | None = Field(
        None,
        description="Operator bearer token for the admin API; unset: account keys only.",
    )
    # The store's own default: a week, long enough to look into last week's complaint.
    call_retention_s: float = Field(
        7 * 86_400,
        gt=0,
        description="Seconds a call record is kept after the call ends.",
    )

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("bind", "http_bind")
    @classmethod
    def _check_ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value

    @field_validator("advertise")
    @classmethod
    def _check_advertise(cls, value: str | None) -> str | None:
        # It is the connection address of our SDP (RFC 4566 §5.7), where carriers
        # take an IP address, and a host name is a DNS lookup away from failing.
        if value is not None and ipaddress.ip_address(value).is_unspecified:
            raise ValueError("an unspecified address cannot be reached")
        return value

    @field_validator("rtp_ports")
    @classmethod
    def _check_rtp_ports(cls, value: str) -> str:
        parse_port_range(value)
        return value

    @field_validator("media_workers")
    @classmethod
    def _check_media_workers(cls, value: int, info: ValidationInfo) -> int:
        # Each worker binds RTP in a slice of its own: every slice needs a port.
        rtp_ports = info.data.get("rtp_ports")
        if value > 0 and rtp_ports is not None:
            low, high = parse_port_range(rtp_ports)
            pairs = (high - (low + (low & 1)) + 1) // 2
            if pairs < value:
                raise ValueError(
                    f"the RTP range {rtp_ports} holds {pairs} ports, fewer than "
                    f"one per media worker"
                )
        return value

    @field_validator("default_country")
    @classmethod
    def _check_country(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country we know")
        return value

    @field_validator("transports", "digest_algorithms", mode="before")
    @classmethod
    def _split_transports(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            return [
                p.upper() if p.upper() in ("SHA-256", "MD5") else p.lower()
                for p in parts
            ]
        return value

    @model_validator(mode="after")
    def _check_transports(self) -> Settings:
        if not self.transports:
            raise ValueError("transports: at least one of udp, tcp")
        return self

    @property
    def rtp_port_range(self) -> tuple[int, int]:
        """The RTP range as (low, high)."""
        return parse_port_range(self.rtp_ports)

    @property
    def advertised_address(self) -> str:
        """The address peers must use to reach us (Via, Contact, SDP)."""
        if self.advertise:
            return self.advertise
        if ipaddress.ip_address(self.bind).is_unspecified:
            return primary_address(ipv6=":" in self.bind)
        return self.bind

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


class _TomlSource(PydanticBaseSettingsSource):
    """Values from the TOML file named by ``ROUTER_CONFIG`` (if any)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("ROUTER_CONFIG")
        if not path:
            return {}
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"config file {path}: {error}") from None
        return dict(data.get("router", data))


def parse_port_range(value: str) -> tuple[int, int]:
    """Parse ``LO-HI`` into a validated pair.

    Raises:
        ValueError: when the range is malformed or outside 1024..65535.
    """
    try:
        low_text, high_text = value.split("-", 1)
        low, high = int(low_text), int(high_text)
    except ValueError:
        raise ValueError(f"{value!r} is not a port range LO-HI") from None
    if not 1024 <= low < high <= 65535 or high - low < 3:
        raise ValueError(
            f"{value!r}: need 1024 <= LO < HI <= 65535 with room for two ports"
        )
    return low, high


def primary_address(ipv6: bool = False) -> str:
    """Return the address this host uses for its default route.

    Connecting a UDP socket sends nothing; it only asks the kernel which
    source address it would use. Falls back to loopback on a host without a
    route.
    """
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    probe = "2001:db8::1" if ipv6 else "192.0.2.1"
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((probe, 9))
            return str(sock.getsockname()[0])
        except OSError:
            return "::1" if ipv6 else "127.0.0.1"


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Build settings from CLI overrides, environment and config file.

    Raises:
        ConfigError: naming the first bad setting.
    """
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return Settings(**values)
    except SettingsError as error:
        raise ConfigError(f"invalid setting: {error}") from None
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        env = f"ROUTER_{name.upper()}"
        where = env
        config = os.environ.get("ROUTER_CONFIG")
        if config and name not in values and env not in os.environ:
            where = f"{name} in {config}"  # the value came from the config file
        raise ConfigError(f"invalid setting {name} ({where}): {first['msg']}") from None


# Variables with the prefix that are not settings: the config file's name, and the
# admin-API client of the command line.
_OTHER_VARIABLES = frozenset({"ROUTER_CONFIG", "ROUTER_API_URL", "ROUTER_API_KEY"})


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``ROUTER_*`` variables that name no setting, with the closest one when any.

    A misspelled variable would otherwise be ignored without a word.
    """
    known = {f"ROUTER_{name.upper()}" for name in Settings.model_fields}
    known |= _OTHER_VARIABLES
    # Matched without the prefix, which every name shares.
    by_suffix = {name.removeprefix("ROUTER_"): name for name in known}
    notes = []
    for name in sorted(environ):
        if name.startswith("ROUTER_") and name not in known:
            suffix = name.removeprefix("ROUTER_")
            close = difflib.get_close_matches(suffix, by_suffix, n=1, cutoff=0.75)
            hint = f" (did you mean {by_suffix[close[0]]}?)" if close else ""
            notes.append(name + hint)
    return notes


def default_db_path() -> Path:
    """The embedded store's default file, in the user's data directory."""
    import platformdirs

    return Path(platformdirs.user_data_dir("sip-router")) / "router.db"
