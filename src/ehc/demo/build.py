"""Building the demo province: every card through the card service, in one transaction."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter

from rich.table import Table

from ..accounts import service as accounts
from ..cards import service as cards
from ..identity.service import make_uscc
from ..institutions import service as institutions
from ..kit.codes import Channel
from ..kit.context import Actor
from ..kit.errors import Conflict
from ..platform import Platform
from .payments import Candidate, Payer, add_payments
from .plan import (
    ADMIN_PASSWORD,
    CLERK_PASSWORD,
    INSTITUTIONS,
    OPERATOR_PASSWORD,
    PROVINCE,
    REFERENCE_DAY,
    DemoPlan,
    Resident,
    institutions_with,
    plan_demo,
)

# -- building it ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StaffLogin:
    username: str
    password: str
    role: str
    institution: str | None


@dataclass(frozen=True)
class Example:
    label: str
    name: str | None
    document_type: str | None
    document_number: str | None
    ehc_id: str


@dataclass
class DemoSummary:
    seed: int
    skipped: bool = False  # --if-empty found cards already: nothing was added
    institutions: list[tuple[str, str, str, str | None, str, str]] = field(default_factory=list)  # id, uscc, name, kind, level, region
    residents: int = 0  # people registered from a document (self-registered or by a guardian)
    guardians: int = 0
    family_bindings: int = 0
    newborns: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    staff: list[StaffLogin] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    payers: list[Payer] = field(default_factory=list)  # demo residents with open bills (payments.py)
    payments_skipped: str | None = None  # why there is no payment demo data, if there is none
    seconds: float = 0.0

    @property
    def cards(self) -> int:
        return sum(self.by_status.values())


Progress = Callable[[str, int, int], None]  # (stage, done, total)


def build_demo(
    platform: Platform,
    residents: int = 1000,
    seed: int = 2026,
    *,
    if_empty: bool = False,
    progress: Progress | None = None,
    wait_for_payments: float = 0.0,
) -> DemoSummary:
    """Build the demo province in one transaction.

    Refuses a database that already has cards (``demo_not_empty``), unless ``if_empty``, when it
    does nothing and says so (``skipped``). Refuses production settings outright: the demo creates
    staff accounts whose passwords are printed. Afterwards, when the insurance service and the bank
    answer (within ``wait_for_payments`` seconds), a few residents get bills to pay (``payments.py``).
    """
    if platform.settings.environment == "production":
        raise Conflict("The demo creates accounts with published passwords; it never runs in production.",
                       code="demo_refused_in_production")
    started = perf_counter()
    plan = plan_demo(residents, seed, platform.settings.family_limit)
    summary = DemoSummary(seed=seed)
    total = len(INSTITUTIONS) + 1 + len(plan.residents) + len(plan.babies) + len(plan.changes)
    done = 0

    def tick(stage: str, n: int = 1) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(stage, done, total)

    with platform.db.session() as session:
        if not cards.registry_is_empty(session):
            if if_empty:
                summary.skipped = True
                return summary
            raise Conflict("The database already has cards; the demo only fills an empty platform.",
                           code="demo_not_empty")
        rng = random.Random(f"institutions:{seed}")

        # Institutions.
        made = []
        for spec in INSTITUTIONS:
            code = make_uscc(spec.registrar, spec.region_code, f"{rng.randrange(10**8):08d}")
            inst = institutions.create_institution(session, uscc=code, name=spec.name, kind=spec.kind,
                                                   region_code=spec.region_code, level=spec.level)
            made.append(inst)
            summary.institutions.append((inst.id, inst.uscc, inst.name, inst.kind, inst.level, inst.region_code))
            tick("institutions")

        # Staff: a window clerk at every institution with a window, an institution admin, a platform admin.
        setup = platform.ctx(session, Actor.system("demo"))
        clerks: dict[int, accounts.StaffAccount] = {}
        for n, i in enumerate(institutions_with("window")):
            username = "clerk" if n == 0 else f"clerk-{n + 1:02d}"
            clerks[i] = accounts.create_staff(setup, username=username, password=CLERK_PASSWORD, role="window_clerk",
                                              display_name=f"{made[i].name} 窗口", institution_id=made[i].id)
            summary.staff.append(StaffLogin(username, CLERK_PASSWORD, "window_clerk", made[i].name))
        accounts.create_staff(setup, username="admin", password=ADMIN_PASSWORD, role="institution_admin",
                              display_name=f"{made[0].name} 管理员", institution_id=made[0].id)
        summary.staff.insert(1, StaffLogin("admin", ADMIN_PASSWORD, "institution_admin", made[0].name))
        accounts.create_staff(setup, username="operator", password=OPERATOR_PASSWORD, role="platform_admin",
                              display_name="四川省卫生健康委 平台管理员", region_code=PROVINCE[0])
        summary.staff.insert(2, StaffLogin("operator", OPERATOR_PASSWORD, "platform_admin", None))
        tick("staff accounts")

        def actor(channel: Channel, institution: int | None) -> Actor:
            if channel == Channel.WINDOW:
                return accounts.staff_actor(clerks[institution], Channel.WINDOW)
            if channel == Channel.KIOSK:
                return Actor(kind="machine", channel=channel, id=f"kiosk:{made[institution].id}:01",
                             institution_id=made[institution].id)
            return Actor.anonymous(channel)

        def ctx(a: Actor):  # noqa: ANN202
            return platform.ctx(session, a)

        issued_cards: dict[int, cards.Card] = {}
        all_cards: dict[str, cards.Card] = {}

        # Residents who register themselves (spouses too: their partner binds them afterwards).
        for r in plan.self_registered:
            issued = cards.register(ctx(actor(r.channel, r.institution)), r.registration())
            issued_cards[r.index] = all_cards[issued.card.ehc_id] = issued.card
            summary.residents += issued.created
            tick("residents")

        # Families: the guardian registers children and elderly parents, and binds the spouse.
        guardians = set()
        for index in plan.bindings:
            member = plan.residents[index]
            g = plan.residents[member.guardian]
            issued = cards.bind_family_member(ctx(actor(g.channel, g.institution)), issued_cards[g.index].ehc_id,
                                              member.registration(), member.relation)
            issued_cards[index] = all_cards[issued.card.ehc_id] = issued.card
            summary.residents += issued.created
            summary.family_bindings += 1
            guardians.add(g.index)
            if issued.created:
                tick("families")

        # Newborns, registered with a parent's card.
        for baby in plan.babies:
            maternity_actor = actor(baby.channel, baby.institution)
            issued = cards.register_newborn(ctx(maternity_actor), issued_cards[baby.parent].ehc_id, baby.newborn())
            all_cards[issued.card.ehc_id] = issued.card
            summary.newborns += issued.created
            summary.family_bindings += 1
            guardians.add(baby.parent)
            tick("newborns")
        summary.guardians = len(guardians)

        # A few cards in other states, at the tour hospital's window.
        window = actor(Channel.WINDOW, institutions_with("window")[0])
        for change in plan.changes:
            ehc_id = issued_cards[change.resident].ehc_id
            if change.action == "approve":  # the clerk saw the passport itself
                shown = plan.residents[change.resident]
                cards.review(ctx(window), ehc_id, "approve", document_type=shown.document_type,
                             document_number=shown.document_number, reason=change.reason)
            else:
                cards.transition(ctx(window), ehc_id, change.action, change.reason)
            tick("card states")

        summary.by_status = dict(Counter(c.status for c in all_cards.values()).most_common())
        summary.by_channel = dict(sorted(Counter(c.channel for c in all_cards.values()).items()))
        summary.examples = _examples(plan, issued_cards, all_cards)
        candidates = _payment_candidates(plan, issued_cards)
        hospital_id = made[0].id
    # Payments talk to the two services, committing as they go: after the cards' transaction.
    summary.payers, summary.payments_skipped = add_payments(platform, candidates, hospital_id, wait_for_payments)
    summary.seconds = perf_counter() - started
    return summary


def _payment_candidates(plan: DemoPlan, issued: dict[int, cards.Card], count: int = 3) -> list[Candidate]:
    """Adults who registered themselves with an ID card and a phone of their own (so signing in with it
    picks them at once), whose card is in use (normal)."""
    phones = Counter(r.phone for r in plan.residents if r.phone)
    out = []
    for r in plan.self_registered:
        card = issued.get(r.index)
        if (card is not None and card.status == "normal" and r.document_type == "01" and r.phone
                and phones[r.phone] == 1 and r.guardian is None and r.age_on(REFERENCE_DAY) >= 18):
            out.append(Candidate(r.name, r.document_type, r.document_number, r.phone, card.ehc_id, card.person_id))
        if len(out) == count:
            break
    return out


def _examples(plan: DemoPlan, issued: dict[int, cards.Card], all_cards: dict[str, cards.Card]) -> list[Example]:
    def of(label: str, r: Resident) -> Example:
        return Example(label, r.name, r.document_type, r.document_number, issued[r.index].ehc_id)

    out = []
    if plan.full_family is not None:
        out.append(of("guardian whose family is full", plan.residents[plan.full_family]))
    twins = [b for b in plan.babies if b.multiple_birth]
    if twins:
        out.append(of("parent of twins", plan.residents[twins[0].parent]))
    by_action: dict[str, Resident] = {}
    for c in plan.changes:
        by_action.setdefault(c.action, plan.residents[c.resident])
    for action, label in (("report_lost", "card reported lost"), ("reissue", "card reissued (sequence 2)"),
                          ("cancel", "card cancelled")):
        if action in by_action:
            out.append(of(label, by_action[action]))
    pending = [r for r in plan.residents if r.document_type == "03" and all_cards[issued[r.index].ehc_id].status == "pending_review"]
    if pending:
        out.append(of("passport application pending review", pending[0]))
    return out


def print_summary(summary: DemoSummary, console) -> None:  # noqa: ANN001
    """The summary as the ``ehc demo`` command prints it."""
    if summary.skipped:
        console.print("The database already has cards: demo not built (--if-empty).")
        return
    console.print(f"Demo province built in {summary.seconds:.1f} s (seed {summary.seed}).")
    table = Table("institution", "kind", "level", "region", "USCC", "id", title="Institutions")
    for inst_id, code, name, kind, level, region in summary.institutions:
        table.add_row(name, kind, level or "", region, code, inst_id)
    console.print(table)
    counts = Table("", "count", title="Cards")
    counts.add_row("residents registered", str(summary.residents))
    counts.add_row("guardians binding family", str(summary.guardians))
    counts.add_row("family bindings (incl. newborns)", str(summary.family_bindings))
    counts.add_row("newborns", str(summary.newborns))
    for status, n in summary.by_status.items():
        counts.add_row(f"status {status}", str(n))
    for channel, n in summary.by_channel.items():
        counts.add_row(f"channel {channel} {Channel(channel).name.lower()}", str(n))
    console.print(counts)
    examples = Table("example", "name", "document", "EHC ID", title="Examples for the tour")
    for e in summary.examples:
        examples.add_row(e.label, e.name or "", f"{e.document_type} {e.document_number}", e.ehc_id)
    console.print(examples)
    if summary.payers:
        payers = Table("name", "phone (sign in with it)", "EHC ID", "insurance", "bank card", "open bills",
                       title="Residents with open bills (GET /api/v1/me/bills once signed in)")
        for p in summary.payers:
            payers.add_row(p.name, p.phone, p.ehc_id, p.scheme, p.bank_masked,
                           f"{p.bills} ({p.owed_fen / 100:.2f} yuan)")
        console.print(payers)
    if summary.payments_skipped:
        console.print(f"No payment demo data: {summary.payments_skipped}.")
    staff = Table("username", "password", "role", "institution", title="Demo staff accounts (sign in at /api/v1/auth/staff/token)")
    for s in summary.staff:
        staff.add_row(s.username, s.password, s.role, s.institution or "(province)")
    console.print(staff)
