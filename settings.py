"""All configuration, read once from the environment (or a .env file) through one class."""
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from einvoice import identifiers

if TYPE_CHECKING:
    from einvoice.document import Seller
    from worker import WorkerTuning

PROJECT_ROOT = Path(__file__).resolve().parent

Queue = Literal["subscriptions", "payments", "documents"]
QUEUES: tuple[Queue, ...] = get_args(Queue)


def parse_queues(names: str) -> tuple[Queue, ...]:
    """`WORKER_QUEUES`: which task queues a worker process polls, comma-separated, in our order."""
    given = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in given if n not in QUEUES]
    if unknown or not given:
        raise ValueError(f"{', '.join(unknown) or 'nothing'}: not a queue; choose among {', '.join(QUEUES)}")
    return tuple(q for q in QUEUES if q in given)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Unset means "start the embedded part": PostgreSQL, Temporal dev server, localstripe.
    database_url: str | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    task_queue: str = "subscriptions"
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: str | None = None  # whsec_…: the webhook endpoint refuses events without it
    api_port: int = 8080  # the HTTP API of `run` (a free port when this one is taken)
    api_host: str = "127.0.0.1"  # loopback unless the operator says otherwise

    # R11: a declined charge is retried this many days after the first failure.
    dunning_retry_days: list[int] = [3, 6, 9]
    # R16: the smallest amount Stripe charges, in cents (€0.50 for EUR).
    minimum_charge: int = Field(default=50, ge=1)

    # E-mail (R13 notices and the rest): unset means a local SMTP server started by `run`
    # catches the mail in DATA_DIR/mail. smtp://user:pass@host:587?starttls=1, or smtps://…:465.
    smtp_url: str | None = None
    mail_from: str = "Facturation <facturation@localhost>"

    # Observability: where the worker's Prometheus endpoint listens (the Temporal SDK's
    # metrics and ours); unset means a free loopback port for `run`, 127.0.0.1:9464 for `worker`.
    metrics_address: str | None = Field(default=None, pattern=r"^[^:\s]+:\d{1,5}$")  # host:port
    log_format: Literal["json", "text"] = "json"  # JSON lines on stderr, with the ids they concern
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # The worker (worker.WorkerTuning; docs/scaling.md): charges per second over every worker
    # of the payments queue, and the threads, connections and cache of each worker.
    payments_per_second: float = Field(default=20.0, gt=0)
    activity_threads: int = Field(default=16, ge=1)
    payment_threads: int = Field(default=8, ge=1)
    document_threads: int = Field(default=2, ge=1)  # e-invoices drawn at once (issue 11)
    max_cached_workflows: int = Field(default=1000, ge=0)
    # Which task queues this worker process polls (docs/scaling.md §4): all three by default;
    # production runs the documents queue on workers of its own, so that the others never load
    # the drawing libraries nor share a CPU with them.
    worker_queues: Annotated[tuple[Queue, ...], NoDecode] = QUEUES  # WORKER_QUEUES=payments,documents

    # Us, the seller every invoice names (issue 11): SIREN and VAT number checked as the API
    # checks a firm's. The defaults are a fictitious demo company, so that `run` needs nothing;
    # production sets them all (docker-compose.yml refuses to start without them).
    seller_name: str = Field(default="Facturation Cabinets (démo)", min_length=1, max_length=200)
    seller_siren: str = "900000050"
    seller_vat_number: str = "FR21900000050"
    seller_address_line1: str | None = "1 rue de la Démonstration"
    seller_address_line2: str | None = None
    seller_postal_code: str | None = "75002"
    seller_city: str | None = "Paris"
    seller_country: str = "FR"
    seller_email: str | None = "facturation@example.com"
    seller_legal_mentions: str = "SAS au capital de 10 000 € — RCS Paris 900 000 050 — société fictive de démonstration"

    catalog_path: Path | None = None
    data_dir: Path = PROJECT_ROOT / ".var"
    temporal_ui_port: int | None = None  # free port when unset

    @field_validator("worker_queues", mode="before")
    @classmethod
    def _known_queues(cls, value: object) -> object:
        return parse_queues(value) if isinstance(value, str) else value

    def worker_tuning(self) -> "WorkerTuning":
        from worker import WorkerTuning

        return WorkerTuning(activity_threads=self.activity_threads, payment_threads=self.payment_threads,
                            document_threads=self.document_threads,
                            payments_per_second=self.payments_per_second, max_cached_workflows=self.max_cached_workflows,
                            queues=self.worker_queues)

    def seller(self) -> "Seller":
        """Our identity as an invoice names its seller."""
        from einvoice.document import PostalAddress, Seller

        address = PostalAddress(line1=self.seller_address_line1, line2=self.seller_address_line2,
                                postal_code=self.seller_postal_code, city=self.seller_city, country=self.seller_country)
        return Seller(name=self.seller_name, siren=self.seller_siren, vat_number=self.seller_vat_number,
                      address=address, email=self.seller_email, legal_mentions=self.seller_legal_mentions)

    @field_validator("seller_name", "seller_legal_mentions", mode="before")
    @classmethod
    def _stripped(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("seller_address_line1", "seller_address_line2", "seller_postal_code", "seller_city",
                     "seller_email", mode="before")
    @classmethod
    def _stripped_or_unset(cls, value: object) -> object:
        """Set to nothing (compose's `${SELLER_ADDRESS_LINE2:-}`), an optional part is left out."""
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("seller_siren")
    @classmethod
    def _siren(cls, value: str) -> str:
        return identifiers.siren(value)

    @field_validator("seller_vat_number")
    @classmethod
    def _vat_number_of_the_siren(cls, value: str, info: ValidationInfo) -> str:
        return identifiers.vat_number(value, siren=info.data.get("seller_siren"))

    @field_validator("seller_country")
    @classmethod
    def _country(cls, value: str) -> str:
        return identifiers.country_code(value)

    @field_validator("seller_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,255}", value):
            raise ValueError("must be an address like facturation@example.fr")
        return value

    @field_validator("dunning_retry_days")
    @classmethod
    def _increasing(cls, days: list[int]) -> list[int]:
        if not days or any(d <= 0 for d in days) or days != sorted(set(days)):
            raise ValueError("dunning_retry_days must be increasing positive days, e.g. [3, 6, 9]")
        return days

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_readable(cls, url: str | None) -> str | None:
        if url:
            from notices.smtp import SmtpServer

            SmtpServer.from_url(url)  # BadSmtpUrl is a ValueError: says what is wrong
        return url

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, url: str | None) -> str | None:
        return normalise_database_url(url) if url else url


def normalise_database_url(url: str) -> str:
    """postgres:// and postgresql:// both mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
