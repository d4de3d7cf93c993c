"""Building the demo province: every card through the card service, in one transaction."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from time import perf_counter

from rich.table import Table

from ..accounts import service as accounts
from ..cards import service as cards
from ..identity.service import make_uscc
from ..institutions import service as institutions
from ..kit.clock import CHINA, utcnow
from ..kit.codes import Channel
from ..kit.context import Actor, Ctx
from ..kit.errors import Conflict
from ..mpi import service as mpi
from ..platform import Platform
from ..qr import service as qr
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
    terminals: int = 0  # registered at the institutions with windows and kiosks
    card_uses: dict[str, int] = field(default_factory=dict)  # scans of the last days, by channel
    review_pairs: int = 0  # master-index pairs waiting for a human decision
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
    total = len(INSTITUTIONS) + 1 + len(plan.residents) + len(plan.babies) + len(plan.changes) + 1
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

        # What the tour's later pages show: terminals, card uses, master-index review pairs.
        terminals = _seed_terminals(ctx(setup), made)
        summary.terminals = sum(len(t) for t in terminals.values())
        summary.card_uses = _seed_card_uses(ctx, made, clerks, terminals, list(all_cards.values()), seed)
        summary.review_pairs = _seed_review_pairs(ctx, made[0], plan, issued_cards, seed)
        tick("activity")
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


# -- activity: terminals, card uses, review pairs ---------------------------------------------------

# Departments the tour hospital (the demo admin's) registers, and where its doctors' workstations are.
TOUR_DEPARTMENTS = ("0300", "0700", "3200")  # internal medicine, paediatrics, medical imaging
ACTIVITY_DAYS = 7  # card uses are spread over the last week, in opening hours (China time)
USES_PER_CARD = 0.25  # about one card in four was used in that week
MAX_USES = 300
REVIEW_PAIRS = 4


_ROLE_NAMES = {"window": "窗口", "kiosk": "自助机", "workstation": "医生工作站"}


@dataclass(frozen=True)
class _Terminal:
    terminal_id: str
    role: str
    department: str | None = None


def _seed_terminals(ctx: Ctx, made: list) -> dict[int, list[_Terminal]]:  # noqa: ANN001 - institutions
    """A window terminal at every institution with a window, a kiosk where there are kiosks; the tour
    hospital (index 0, the demo admin's) has two of each, its departments and doctors' workstations."""
    out: dict[int, list[_Terminal]] = {}
    for i, institution in enumerate(made):
        spec = INSTITUTIONS[i]
        wanted: list[_Terminal] = []
        copies = 2 if i == 0 else 1
        if spec.window:
            wanted += [_Terminal(f"W{n:02d}", "window") for n in range(1, copies + 1)]
        if spec.kiosk:
            wanted += [_Terminal(f"K{n:02d}", "kiosk") for n in range(1, copies + 1)]
        if i == 0:
            for n, code in enumerate(TOUR_DEPARTMENTS, start=1):
                institutions.add_department(ctx, institution, code=code)
                wanted.append(_Terminal(f"D{n:02d}", "workstation", code))
        for t in wanted:
            institutions.register_terminal(ctx, institution, terminal_id=t.terminal_id, role=t.role,
                                           department_code=t.department, name=f"{_ROLE_NAMES[t.role]} {t.terminal_id}")
        if wanted:
            out[i] = wanted
    return out


# What each channel is used for at a hospital: (care step, weight).
_SCENES_BY_CHANNEL: dict[Channel, tuple[tuple[str, int], ...]] = {
    Channel.WINDOW: (("0101012", 5), ("0101011", 3), ("0101051", 3), ("010109", 1)),
    Channel.KIOSK: (("0101011", 4), ("0101051", 3), ("0101081", 3), ("0101082", 1)),
    Channel.WORKSTATION: (("010102", 5), ("010106", 3), ("010104", 2)),
    Channel.OFFICIAL_ACCOUNT: (("0101013", 2), ("0101081", 1)),
    Channel.MINI_PROGRAM: (("0101011", 2), ("0101051", 2)),
}


_TOUR_CHANNELS = (Channel.WINDOW, Channel.KIOSK, Channel.WORKSTATION, Channel.OFFICIAL_ACCOUNT, Channel.MINI_PROGRAM)


def _seed_card_uses(ctx_for: Callable[[Actor], Ctx], made: list, clerks: dict, terminals: dict[int, list[_Terminal]],
                    all_cards: list[cards.Card], seed: int) -> dict[str, int]:
    """Scans over the last days, each made as a scanner makes it: the resident's phone draws a dynamic
    code (``qr.issue_dynamic``) and the window clerk, kiosk, doctor's workstation or the hospital's
    official account / mini-program verifies it (``qr.verify``), which records the use. Times are in
    opening hours, China time; the tour hospital sees the most. Returns the uses by channel.

    A demo artefact, said plainly: the cards were issued when the demo was built, so these scans are
    dated before their cards' issue; nothing on the platform compares the two."""
    rng = random.Random(f"activity:{seed}")
    usable = sorted((c for c in all_cards if c.status == "normal"), key=lambda c: c.ehc_id)
    if not usable or not terminals:
        return {}
    sites = sorted(terminals)
    weights = [6 if i == 0 else 2 if INSTITUTIONS[i].kind == "hospital" else 1 for i in sites]
    now = utcnow()
    today = now.astimezone(CHINA).date()
    # Clamping a time to the past draws from its own stream, so the hour the demo is built at never
    # changes which channels and scenes the main stream picks.
    clamp = random.Random(f"activity-clamp:{seed}")
    planned = []
    for n in range(min(MAX_USES, max(12, round(len(usable) * USES_PER_CARD)))):
        site = sites[0] if n < len(_TOUR_CHANNELS) else rng.choices(sites, weights)[0]
        roles = {t.role for t in terminals[site]}
        channels = [Channel.WINDOW] * 3 + [Channel.OFFICIAL_ACCOUNT, Channel.MINI_PROGRAM]
        channels += [Channel.KIOSK] * 3 if "kiosk" in roles else []
        channels += [Channel.WORKSTATION] * 4 if "workstation" in roles else []
        # The tour hospital shows one use of each channel it has first; the rest are drawn.
        first = _TOUR_CHANNELS[n] if n < len(_TOUR_CHANNELS) else None
        channel = first if first in channels else rng.choice(channels)
        scenes, scene_weights = zip(*_SCENES_BY_CHANNEL[channel])
        day = today - timedelta(days=rng.randrange(ACTIVITY_DAYS))
        at = datetime.combine(day, time(8, 0), CHINA) + timedelta(minutes=rng.randrange(9 * 60 + 30),
                                                                  seconds=rng.randrange(60))
        if at >= now - timedelta(minutes=5):  # today's later hours have not happened yet
            at = now - timedelta(minutes=clamp.randrange(5, 8 * 60))
        planned.append((at, rng.choice(usable), site, channel, rng.choices(scenes, scene_weights)[0]))
    by_channel: Counter[str] = Counter()
    for at, card, site, channel, scene in sorted(planned, key=lambda p: p[0]):
        institution = made[site].id
        terminal = None
        if channel == Channel.WINDOW:
            actor = accounts.staff_actor(clerks[site], Channel.WINDOW)
            terminal = rng.choice([t for t in terminals[site] if t.role == "window"])
        elif channel in (Channel.KIOSK, Channel.WORKSTATION):
            role = "kiosk" if channel == Channel.KIOSK else "workstation"
            terminal = rng.choice([t for t in terminals[site] if t.role == role])
            doctor = f"doctor-{rng.randrange(1, 13):02d}" if role == "workstation" else None
            actor = Actor(kind="machine", channel=channel, id=f"his:{institution}", institution_id=institution,
                          operator=doctor)
        else:  # the hospital's account or mini-program, checking the code the resident shows in it
            actor = Actor(kind="machine", channel=channel, id=f"app:{institution}", institution_id=institution)
        ctx = ctx_for(actor)
        # Drawn on the phone a few seconds before the scan, as the resident opens the code page.
        text = qr.issue_dynamic(ctx, card, now=at - timedelta(seconds=rng.randrange(5, 50))).text
        qr.verify(ctx, text, qr.Use(scene=scene, channel=channel.value,
                                    terminal_id=terminal.terminal_id if terminal else None,
                                    department=terminal.department if terminal else None), now=at)
        by_channel[channel.value] += 1
    return dict(sorted(by_channel.items()))


def _seed_review_pairs(ctx_for: Callable[[Actor], Ctx], hospital, plan: DemoPlan,  # noqa: ANN001
                       issued: dict[int, cards.Card], seed: int) -> int:
    """Patients the tour hospital's system sent to the real-time matcher with its own record numbers,
    whose details differ from a resident's just enough that no machine should decide: another phone, no
    address, region or document, the day and month of birth swapped (as a misread form) or a day off
    (with the region given, the matcher is sure enough to link most of them itself). ``mpi.submit`` with
    ``link`` queues them for review, as it does for a hospital. Returns how many pairs wait."""
    rng = random.Random(f"reviews:{seed}")
    his = ctx_for(Actor(kind="machine", channel=Channel.HOSPITAL_SYSTEM, id=f"his:{hospital.id}",
                        institution_id=hospital.id))
    adults = [r for r in plan.residents if r.document_type == "01" and r.age_on(REFERENCE_DAY) >= 18
              and r.index in issued]
    rng.shuffle(adults)
    queued = 0
    for n, r in enumerate(adults[:REVIEW_PAIRS * 4], start=1):
        if queued >= REVIEW_PAIRS:
            break
        born = r.birth_date
        if born.day <= 12 and born.day != born.month:  # day and month swapped, as a form misread
            born = born.replace(month=born.day, day=born.month)
        else:
            born = born.replace(day=born.day % 28 + 1)  # a day off
        record = mpi.Record(name=r.name, sex=r.sex, birth_date=born, phone=f"139{rng.randrange(10**8):08d}",
                            address=None, region_code=None,
                            identifiers=(mpi.parse("mrn", f"H-{2000 + n:04d}", his.actor),))
        outcome = mpi.submit(his, record, link=True)
        queued += outcome.action == "queued"
    return queued


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
    counts.add_row("terminals", str(summary.terminals))
    for channel, n in summary.card_uses.items():
        counts.add_row(f"card uses, last {ACTIVITY_DAYS} days, channel {channel} {Channel(channel).name.lower()}", str(n))
    counts.add_row("master-index pairs to review", str(summary.review_pairs))
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
