"""The `recorder:` section of the config: the database URL (its driver checked at load), the writer's batching
and retention."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecorderSettings(_Strict):
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; None = sqlite:///<state_dir>/edge-agent.db"
    )
    flush_interval_seconds: float = Field(default=1.0, gt=0, description="Writer commits at least this often")
    batch_rows: int = Field(default=500, ge=1, description="Writer commits when this many rows are queued")
    queue_size: int = Field(
        default=100_000, ge=100, description="Bounded write queue (rows beyond are dropped)"
    )
    retention_days: float = Field(default=30.0, gt=0, description="Readings older than this are deleted")
    retention_interval_seconds: float = Field(default=3600.0, gt=0, description="How often retention runs")

    @field_validator("database_url")
    @classmethod
    def _driver_installed(cls, v: str | None) -> str | None:
        if v is not None:
            check_database_driver(v)
        return v


# SQLAlchemy "backend+driver" -> the package that provides its default DBAPI driver
DRIVER_PACKAGES: dict[str, str] = {
    "postgresql+psycopg2": "psycopg2-binary",
    "postgresql+psycopg": "'psycopg[binary]'",
    "postgresql+pg8000": "pg8000",
    "postgresql+asyncpg": "asyncpg",
    "mysql+mysqldb": "mysqlclient",
    "mysql+pymysql": "PyMySQL",
    "mariadb+mariadbconnector": "mariadb",
    "mssql+pyodbc": "pyodbc",
    "oracle+oracledb": "oracledb",
}


def check_database_driver(url: str) -> None:
    """ValueError naming the package to install when the URL's dialect or DBAPI driver is missing."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        u = make_url(url)
    except ArgumentError:
        raise ValueError(
            "not a valid SQLAlchemy URL; use e.g. sqlite:////var/lib/edge-agent/edge-agent.db or "
            "postgresql://user@host/db"
        ) from None
    name = u.drivername
    try:
        dialect = u.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database dialect {name!r}; use sqlite:// or postgresql://") from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        full = f"{u.get_backend_name()}+{dialect.driver}"
        pkg = DRIVER_PACKAGES.get(full) or e.name or "its DBAPI driver"
        raise ValueError(
            f"the driver for {name!r} ({full}) is not installed; install it into the agent's environment: "
            f"pip install {pkg}"
        ) from None
