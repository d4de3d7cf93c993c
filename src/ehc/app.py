"""The ASGI app: wiring only. Routers come from the domains; rules live in their services."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from . import __version__, logs
from .accounts.auth import identify_caller
from .accounts.endpoints import router as accounts_router
from .accounts.endpoints import staff_router
from .apps.endpoints import router as apps_router
from .appointments.endpoints import router as appointments_router
from .appointments.service import start_sweeper as start_appointments_sweeper
from .audit.endpoints import router as audit_router
from .audit.service import start_sweeper
from .payments.service import start_driver as start_payments_driver
from .statistics.endpoints import router as statistics_router
from .statistics.service import start_refresher
from .cards.endpoints import router as cards_router
from .fhir.endpoints import outcome_response
from .family_doctors.endpoints import me_router as family_doctor_me_router
from .family_doctors.endpoints import router as family_doctors_router
from .fhir.endpoints import router as fhir_router
from .institutions.endpoints import router as institutions_router
from .kit.context import Actor
from .kit import openapi
from .kit.http import InFlightLimit, NulGuardMiddleware, RequestIdMiddleware, install_problem_handlers
from .me.endpoints import router as me_router
from .mpi.endpoints import router as mpi_router
from .payments.endpoints import router as payments_router
from .qr import service as qr
from .qr.endpoints import routers as qr_routers
from .records.endpoints import router as records_router
from .db import IN_FLIGHT
from .platform import Platform
from .web import mount as mount_pages


def create_app(platform: Platform | None = None) -> FastAPI:
    platform = platform or Platform.from_settings()
    logs.setup(platform.settings.log_json)
    app = FastAPI(
        title="Electronic health card platform",
        version=__version__,
        description="One real-name health card per resident, accepted by every hospital, kiosk and app.",
        docs_url=None,  # kit.openapi serves /docs from the platform's own files (no CDN)
        redoc_url=None,
    )
    app.state.platform = platform
    app.state.identify_caller = identify_caller  # kit.auth.current_actor asks it who is calling
    app.add_middleware(NulGuardMiddleware, answers={"/fhir": outcome_response})  # FHIR refuses in its own form
    app.add_middleware(InFlightLimit, limit=IN_FLIGHT)  # a burst queues here rather than exhausting the pools
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer, a refusal too, carries the id
    install_problem_handlers(app)
    app.include_router(accounts_router)
    app.include_router(apps_router)
    app.include_router(cards_router)
    app.include_router(me_router)
    for router in qr_routers:
        app.include_router(router)
    app.include_router(institutions_router)
    app.include_router(staff_router)
    app.include_router(audit_router)
    app.include_router(fhir_router)  # /fhir: FHIR identity services on the master index
    app.include_router(mpi_router)
    app.include_router(family_doctors_router)
    app.include_router(family_doctor_me_router)
    app.include_router(appointments_router)
    app.include_router(records_router)  # /api/v1/me/records, /api/v1/records: health records
    app.include_router(statistics_router)
    app.include_router(payments_router)  # bills, settlement, refunds, reconciliation
    mount_pages(app)  # every page router and /static
    openapi.install(app)  # /openapi.json made true to the answers, /docs served offline

    @app.get("/healthz", tags=["operations"], include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory ehc.app:app_factory`` (``ehc serve``, once per worker).

    Serving also runs the audit trail's sweeper, which chains events that busy moments left waiting
    (``audit/service.py``); tests build apps with ``create_app`` and chain explicitly instead.
    """
    app = create_app()
    platform = app.state.platform
    start_sweeper(platform.db)
    # Holds that expired, no-shows and reminders: caught up at start, then every minute.
    start_appointments_sweeper(platform.db, lambda session: platform.ctx(session, Actor.system("appointments")))
    # The card-use table's months ahead (PostgreSQL): at start, then before each statistics refresh.
    keep_partitions = partial(qr.partition_upkeep, platform.db)
    keep_partitions()
    # After each refresh, the scheduled reports that are due (docs/statistics.md).
    start_refresher(platform.db, platform.settings.stats_refresh_seconds,
                    lambda session: platform.ctx(session, Actor.system("stats-schedules")), upkeep=keep_partitions)
    # Payment steps left due (a crash, a service that did not answer) are resumed here, every second.
    if platform.settings.insurance_url and platform.settings.bank_url:
        start_payments_driver(platform.db, lambda session: platform.ctx(session, Actor.system("payments")))
    return app
