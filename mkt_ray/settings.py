"""One frozen settings model per process (MKT_ environment prefix, optional YAML file).

Built once at the entrypoint (`load_settings`) and passed down; nothing else reads the environment.
Nested keys use `__` in the environment: `MKT_KAFKA__BOOTSTRAP_SERVERS=host:9092`,
`MKT_TENANTS='{"acme": {"consent_required": true}}'`.
"""

from __future__ import annotations

import contextvars
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from mkt_ray._config_errors import describe_validation, yaml_file_problem
from mkt_ray.contract._schema import TENANT_ID_PATTERN, is_valid_tenant_id
from mkt_ray.errors import ConfigError

_CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("mkt_config_file", default=None)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlertThresholds(_Frozen):
    """Per-window KPI thresholds; a breach on a closed window raises one alert. None = off."""

    ctr_below: float | None = None
    cvr_below: float | None = None
    cpa_above: float | None = None
    roas_below: float | None = None
    spend_above: float | None = None
    window: Literal["tumbling_1m", "tumbling_1h", "sliding_5m"] = "tumbling_1h"  # the window kind judged
    min_impressions: int = Field(100, ge=0)  # ratios of thinner windows are noise, not alerts


class ProbabilisticMatching(_Frozen):
    """Probabilistic identity matching for one tenant (off by default; README "Online attribution").

    `signals` maps `metadata` keys (privacy-safe values, e.g. a hashed IP prefix and a user-agent family)
    to weights; a candidate scores the weights of the signals it shares, over their total.
    """

    enabled: bool = False
    threshold: float = Field(0.8, gt=0, le=1)
    max_gap_s: float = Field(1800.0, gt=0)
    signals: dict[str, float] = {"ip_prefix_sha256": 0.6, "ua_family": 0.4}

    @model_validator(mode="after")
    def _signals_fit(self) -> ProbabilisticMatching:
        if not 1 <= len(self.signals) <= 8:
            raise ValueError("probabilistic_matching.signals needs 1 to 8 metadata keys")
        bad = {key: w for key, w in self.signals.items() if not (math.isfinite(w) and w > 0)}
        if bad:
            raise ValueError(f"probabilistic_matching.signals weights must be finite and > 0; got {bad}")
        return self


class TenantConfig(_Frozen):
    """A registered tenant and its options."""

    lookback_days: float = Field(30.0, gt=0)
    half_life_days: float = Field(7.0, gt=0)
    position_first: float = Field(0.4, ge=0, le=1)
    position_last: float = Field(0.4, ge=0, le=1)
    consent_required: bool = False
    allowed_lateness_s: float = Field(60.0, ge=0)
    thresholds: AlertThresholds = AlertThresholds()
    channel_aliases: dict[str, str] = {}
    probabilistic_matching: ProbabilisticMatching = ProbabilisticMatching()

    @property
    def allowed_lateness_ms(self) -> int:
        """`allowed_lateness_s` in whole milliseconds, rounded (1.001 s is 1001 ms): the one figure window
        closing and the late-data count both use."""
        return round(self.allowed_lateness_s * 1000)

    @model_validator(mode="after")
    def _position_weights_fit(self) -> TenantConfig:
        if self.position_first + self.position_last > 1.0:
            raise ValueError("position_first + position_last must be at most 1")
        return self


class KafkaSettings(_Frozen):
    """Where the events come from. `bootstrap_servers=None` starts the embedded broker."""

    bootstrap_servers: str | None = None
    topic_events: str = "marketing-events"
    topic_quarantine: str = "marketing-events-quarantine"
    topic_signals: str = "analytics-signals"
    topic_alerts: str = "analytics-alerts"
    partitions: int = Field(4, ge=1, le=256)
    retention_days: int = Field(90, ge=1)
    consumer_group: str = "mkt-ray-ingest"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    # any other librdkafka property, passed through unchanged (e.g. {"ssl.endpoint.identification.algorithm": "none"})
    extra: dict[str, str] = {}

    def client_config(self, bootstrap: str | None = None) -> dict[str, Any]:
        """librdkafka properties shared by producers, consumers and the admin client."""
        servers = bootstrap or self.bootstrap_servers
        if not servers:
            raise ConfigError("kafka.bootstrap_servers is not set and no embedded broker is running")
        conf: dict[str, Any] = {"bootstrap.servers": servers, "security.protocol": self.security_protocol}
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
        }
        conf.update({k: str(v) for k, v in optional.items() if v is not None})
        conf.update(self.extra)
        return conf


class WarehouseSettings(_Frozen):
    """The aggregate store: embedded chDB (default) or a ClickHouse server."""

    backend: Literal["chdb", "clickhouse"] = "chdb"
    database: str = Field("mkt", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    chdb_path: Path | None = None  # default: <data_dir>/warehouse
    url: str | None = None  # e.g. https://clickhouse.internal:8443
    username: str = "default"
    password: SecretStr = SecretStr("")
    verify_tls: bool = True
    ca_cert: Path | None = None


class RawStoreSettings(_Frozen):
    """Immutable raw events as Parquet: a local folder or an s3:// URI."""

    uri: str | None = None  # default: <data_dir>/raw
    # Parquet modular encryption (AES-GCM, 256-bit) when a key is set: 64 hex digits or base64 of 32 bytes
    encryption_key: SecretStr | None = None  # MKT_RAW_STORE__ENCRYPTION_KEY
    encryption_key_file: Path | None = None  # or a file holding the key (e.g. a mounted secret)
    # with a key set, an unsealed decoder checkpoint is refused unless this is true: turn it on for the one
    # restart after encryption is first enabled on an existing store (checkpoints are pickles: only sealed
    # ones prove they were written by a holder of the key)
    read_plain_checkpoints: bool = False  # MKT_RAW_STORE__READ_PLAIN_CHECKPOINTS


class RegistrySettings(_Frozen):
    """The model registry (training jobs publish, `mkt-ray models promote`, the pipeline follows)."""

    uri: str | None = None  # local folder or s3:// URI; default: <data_dir>/models
    poll_s: float = Field(5.0, gt=0)  # how often ingest members re-read the promoted pointers


class SloSettings(_Frozen):
    """Latency objectives; a p99 above one over the last `window_s` raises an alert (mkt_ray/observability)."""

    event_to_kpi_p99_s: float = Field(5.0, gt=0)
    attribution_p99_s: float = Field(30.0, gt=0)
    window_s: float = Field(60.0, gt=0)


class ObservabilitySettings(_Frozen):
    slo: SloSettings = SloSettings()
    otlp_endpoint: str | None = None  # e.g. http://otel-collector:4318/v1/traces; None: spans are not exported
    quality_report_hour_utc: int = Field(1, ge=0, le=23)  # `mkt-ray up` reports on the previous day after this hour
    metrics_export_port: int | None = Field(None, ge=1, le=65535)  # Prometheus port of a local Ray; None: Ray picks


class PipelineSettings(_Frozen):
    ingest_actors: int = Field(1, ge=1, le=16)
    shards: int = Field(2, ge=1, le=64)
    batch_size: int = Field(10_000, ge=1)
    # rows of a partition's slice of a batch taken through decoding, enrichment, attribution and the Arrow
    # conversions together, while their Python objects are in the CPU cache (mkt_ray/pipeline/_batch.py)
    piece_rows: int = Field(10_000, ge=1)
    poll_timeout_s: float = Field(0.2, gt=0)
    checkpoint_every_s: float = Field(10.0, gt=0)  # bounds what a member taking over a partition replays
    attribution: bool = True  # credit conversions in the pipeline; off only to measure the rest apart


class ContractSettings(_Frozen):
    """Limits of the event contract that an operator may tune."""

    max_message_bytes: int = Field(64 * 1024, ge=1024)
    max_future_s: float = Field(300.0, ge=0)
    retention_days: float = Field(90.0, gt=0)
    dedup_window_hours: float = Field(24.0, gt=0)
    outlier_min_samples: int = Field(50, ge=5)
    outlier_threshold: float = Field(8.0, gt=0)


_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


def _check_currency_code(code: str, where: str) -> None:
    if not isinstance(code, str) or not _CURRENCY_CODE.match(code):
        raise ValueError(f"{where}: {code!r} is not a currency code; use 3 upper-case letters (ISO 4217, e.g. EUR)")


class CurrencySettings(_Frozen):
    """Currency normalisation of event amounts (cost, revenue) named by `metadata.currency`.

    `rates[CODE]` = units of `base` per 1 unit of CODE (e.g. {"EUR": 1.08} with base USD). With no
    rates (the default) amounts are left as sent. See `mkt_ray/pipeline/_enrich.py`.
    """

    base: str = "USD"
    rates: dict[str, float] = {}

    @field_validator("base")
    @classmethod
    def _base_is_a_code(cls, base: str) -> str:
        _check_currency_code(base, "currency.base")
        return base

    @field_validator("rates")
    @classmethod
    def _rates_valid(cls, rates: dict[str, float]) -> dict[str, float]:
        for code, rate in rates.items():
            _check_currency_code(code, "currency.rates")
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"currency.rates[{code!r}] = {rate!r}: a rate must be a finite number > 0")
        return rates

    @model_validator(mode="after")
    def _base_rate_is_one(self) -> CurrencySettings:
        if self.rates.get(self.base, 1.0) != 1.0:
            raise ValueError(
                f"currency.rates[{self.base!r}] = {self.rates[self.base]!r}: the base currency's rate must be 1"
                " (or left out); are the rates quoted in another base?"
            )
        return self


# The embedded platform (`make run`, tests) signs tokens with this; anything else must set api.secret.
DEV_API_SECRET = "mkt-ray-DEV-ONLY-secret-do-not-use-in-production"


class ApiSettings(_Frozen):
    """The query API (serve_apps/): token signing, request limits. It listens on serve_host:serve_port."""

    secret: SecretStr = SecretStr(DEV_API_SECRET)  # HS256 key; MKT_API__SECRET in production
    token_ttl_s: int = Field(3600, ge=1)
    replicas: int = Field(1, ge=1)
    # per replica; more wait in the proxy's queue, which retries a full replica with backoff: at 50 clients
    # 32 gave 26 requests/s (p50 2 s), 64 gave 80/s (benchmarks/api.py); a waiting request costs the replica little
    max_ongoing_requests: int = Field(128, ge=1)
    max_queued_requests: int = Field(256, ge=1)  # beyond this Serve answers 503 at once
    max_page_size: int = Field(1000, ge=1)  # largest `limit` a list endpoint accepts
    # campaigns/performance from each replica's read model of kpi_windows (serve_apps/_read_model.py) on
    # the embedded warehouse: at most this many window rows per replica (0: always SQL), at most this old
    read_model_rows: int = Field(2_000_000, ge=0)
    read_model_staleness_ms: int = Field(100, ge=0)
    # on a local Ray the platform starts, one replica serves HTTP on serve_host:serve_port itself (Ray
    # Serve's direct ingress) instead of behind Serve's proxy: one process and one Ray call fewer per
    # request, about 6 of 24 CPU ms (benchmarks/api.py); a cluster (ray_address) keeps Serve's proxies
    direct_ingress: bool = True

    @field_validator("secret")
    @classmethod
    def _secret_long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value().encode()) < 32:
            raise ValueError("api.secret must be at least 32 bytes (HS256 key; e.g. `openssl rand -hex 32`)")
        return secret

    @property
    def uses_dev_secret(self) -> bool:
        return self.secret.get_secret_value() == DEV_API_SECRET


class Settings(BaseSettings):
    """Everything one mkt-ray process needs to know. Frozen; build it with `load_settings`."""

    model_config = SettingsConfigDict(env_prefix="MKT_", env_nested_delimiter="__", frozen=True, extra="forbid")

    data_dir: Path = Path(".mkt-ray")
    kafka: KafkaSettings = KafkaSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    raw_store: RawStoreSettings = RawStoreSettings()
    registry: RegistrySettings = RegistrySettings()
    pipeline: PipelineSettings = PipelineSettings()
    contract: ContractSettings = ContractSettings()
    currency: CurrencySettings = CurrencySettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    tenants: dict[str, TenantConfig] = {}
    api: ApiSettings = ApiSettings()
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(8000, ge=0, le=65535)
    ray_address: str | None = None  # None: start a local Ray
    ray_num_cpus: int = Field(2, ge=1)

    @field_validator("tenants")
    @classmethod
    def _tenant_ids_valid(cls, tenants: dict[str, TenantConfig]) -> dict[str, TenantConfig]:
        for tenant_id in tenants:
            if not is_valid_tenant_id(tenant_id):
                raise ValueError(f"tenant id {tenant_id!r} must match {TENANT_ID_PATTERN}")
        return tenants

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _CONFIG_FILE.get()
        if config_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @property
    def chdb_path(self) -> Path:
        return self.warehouse.chdb_path or self.data_dir / "warehouse"

    @property
    def raw_uri(self) -> str:
        return self.raw_store.uri or str(self.data_dir / "raw")

    @property
    def registry_uri(self) -> str:
        return self.registry.uri or str(self.data_dir / "models")

    def with_tenants(self, tenant_ids: list[str]) -> Settings:
        """A copy with these tenants registered (existing entries keep their options)."""
        tenants = dict(self.tenants)
        for tenant_id in tenant_ids:
            tenants.setdefault(tenant_id, TenantConfig())
        return self.model_copy(update={"tenants": self._tenant_ids_valid(tenants)})


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the process's settings: overrides > MKT_ environment > YAML file > defaults."""
    path = Path(config_file) if config_file else None
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    problem = yaml_file_problem(path) if path is not None else None
    if problem is not None:
        raise ConfigError(problem)
    token = _CONFIG_FILE.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        where = f" (config file {path}, MKT_ environment)" if path else " (MKT_ environment)"
        raise ConfigError(f"invalid settings{where}:\n{describe_validation(exc, Settings)}") from exc
    finally:
        _CONFIG_FILE.reset(token)
