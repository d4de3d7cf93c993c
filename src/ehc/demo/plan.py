"""The demo's plan: who the demo province's residents are, and who binds whom. Pure: no database.

The people are synthetic (``Faker("zh_CN")`` names and phones, ``ehc.identity.synthetic`` document
numbers and addresses) and reproducible: the same seed gives the same residents, documents and families.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from faker import Faker

from ..cards import service as cards
from ..identity.service import resident_id_number, street_address
from ..kit.clock import today
from ..kit.codes import Channel
from ..kit.errors import Invalid

# -- the province ---------------------------------------------------------------------------------

PROVINCE = ("510000", "四川省")
CITIES = {"510100": "成都市", "510700": "绵阳市", "511300": "南充市"}
# GB/T 2260 district codes (checked against python-stdnum's copy of the code table, cn/loc.dat)
# -> (city, district, share of the demo's residents).
REGIONS: dict[str, tuple[str, str, int]] = {
    "510104": ("成都市", "锦江区", 16),
    "510105": ("成都市", "青羊区", 16),
    "510106": ("成都市", "金牛区", 18),
    "510107": ("成都市", "武侯区", 18),
    "510108": ("成都市", "成华区", 14),
    "510703": ("绵阳市", "涪城区", 9),
    "511302": ("南充市", "顺庆区", 9),
}


@dataclass(frozen=True)
class InstitutionSpec:
    name: str
    kind: str  # hospital | community_centre | clinic | pharmacy
    level: str | None
    region_code: str
    # First two USCC characters (GB 32100): registering authority + entity type.
    # 12 = public institution (机构编制), 52 = private non-enterprise unit (民政), 91 = company (市场监管).
    registrar: str
    window: bool = False  # has a service window (registers residents, staffed by a clerk)
    kiosk: bool = False  # has self-service kiosks


# Invented names in the style of real ones; the first is the tour's hospital.
INSTITUTIONS: tuple[InstitutionSpec, ...] = (
    InstitutionSpec("锦江区第一人民医院", "hospital", "3A", "510104", "12", window=True, kiosk=True),
    InstitutionSpec("武侯区第二人民医院", "hospital", "3B", "510107", "12", window=True, kiosk=True),
    InstitutionSpec("青羊区第三中医医院", "hospital", "2A", "510105", "12", window=True, kiosk=True),
    InstitutionSpec("绵阳市涪城区第二人民医院", "hospital", "2A", "510703", "12", window=True, kiosk=True),
    InstitutionSpec("南充市顺庆区第二妇幼保健院", "hospital", "2B", "511302", "12", window=True, kiosk=False),
    InstitutionSpec("金牛区蜀锦路社区卫生服务中心", "community_centre", "1", "510106", "12", window=True),
    InstitutionSpec("成华区府青路社区卫生服务中心", "community_centre", "1", "510108", "12", window=True),
    InstitutionSpec("锦江区书院街社区卫生服务中心", "community_centre", "1", "510104", "12", window=True),
    InstitutionSpec("青羊区康宁诊所", "clinic", None, "510105", "52"),
    InstitutionSpec("涪城区百草堂大药房有限公司", "pharmacy", None, "510703", "91"),
)

CLERK_PASSWORD = "demo-clerk-2026"
ADMIN_PASSWORD = "demo-admin-2026"
OPERATOR_PASSWORD = "demo-operator-2026"

MIN_RESIDENTS = 20
MAX_RESIDENTS = 200_000
PASSPORTS = 5  # 3 left pending review, 1 approved, 1 rejected
EARLIEST_BIRTH = date(1935, 1, 1)
LATEST_BIRTH = date(2022, 12, 31)
# Ages in the plan are taken on a fixed day and newborns are born after a fixed day, so a seed gives
# the same plan whatever day the demo is built.
REFERENCE_DAY = date(2026, 1, 1)
NEWBORN_FROM = date(2026, 1, 1)

# Channel shares of self-registrations (the elderly go to a window more often).
CHANNEL_SHARES = (
    (Channel.WINDOW, 35),
    (Channel.KIOSK, 15),
    (Channel.WEBSITE, 15),
    (Channel.OFFICIAL_ACCOUNT, 15),
    (Channel.MINI_PROGRAM, 20),
)


# -- the plan -------------------------------------------------------------------------------------

@dataclass
class Resident:
    index: int
    surname: str
    given: str
    sex: str  # GB/T 2261.1: 1 male, 2 female
    birth_date: date
    region_code: str
    document_type: str  # 01 resident ID card, 03 passport
    document_number: str
    phone: str | None
    address: str
    channel: Channel
    institution: int | None  # index into INSTITUTIONS for window and kiosk registrations
    guardian: int | None = None  # index of the resident who registers and binds this one
    relation: str | None = None  # how this one is bound: child, parent, spouse

    @property
    def name(self) -> str:
        return self.surname + self.given

    def age_on(self, day: date) -> int:
        return day.year - self.birth_date.year - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))

    def registration(self) -> cards.Registration:
        return cards.Registration(
            name=self.name, document_type=self.document_type, document_number=self.document_number,
            sex=self.sex, birth_date=self.birth_date, phone=self.phone, address=self.address,
            region_code=self.region_code,
        )


@dataclass(frozen=True)
class Baby:
    parent: int  # resident index
    sex: str
    birth_date: date
    name: str | None
    birth_certificate: str | None
    birth_order: int = 1
    multiple_birth: bool = False
    channel: Channel = Channel.WINDOW
    institution: int | None = None

    def newborn(self) -> cards.Newborn:
        return cards.Newborn(sex=self.sex, birth_date=self.birth_date, name=self.name,
                             birth_certificate=self.birth_certificate, birth_order=self.birth_order,
                             multiple_birth=self.multiple_birth)


@dataclass(frozen=True)
class Change:
    resident: int
    action: str
    reason: str | None = None


@dataclass
class DemoPlan:
    seed: int
    residents: list[Resident]
    bindings: list[int]  # residents registered by their guardian, in binding order
    babies: list[Baby]
    changes: list[Change]
    full_family: int | None  # a guardian whose family reaches the limit

    @property
    def self_registered(self) -> list[Resident]:
        return [r for r in self.residents if r.relation is None or r.relation == "spouse"]


def _weighted(rng: random.Random, pairs):  # noqa: ANN001, ANN202
    items, weights = zip(*pairs)
    return rng.choices(items, weights=weights)[0]


def institutions_with(flag: str) -> list[int]:
    return [i for i, spec in enumerate(INSTITUTIONS) if getattr(spec, flag)]


def _pick_institution(rng: random.Random, flag: str, region: str) -> int:
    candidates = institutions_with(flag)
    local = [i for i in candidates if INSTITUTIONS[i].region_code == region]
    return rng.choice(local if local and rng.random() < 0.8 else candidates)


def _address(fake: Faker, rng: random.Random, region: str) -> str:
    city, district, _ = REGIONS[region]
    return street_address(fake, rng, PROVINCE[1], city, district)


def plan_demo(residents: int = 1000, seed: int = 2026, family_limit: int = 5) -> DemoPlan:
    """Who the demo's residents are, and who binds whom. Pure: the same arguments, the same plan."""
    if not MIN_RESIDENTS <= residents <= MAX_RESIDENTS:
        raise Invalid(f"A demo has {MIN_RESIDENTS} to {MAX_RESIDENTS} residents.", code="demo_size_invalid")
    rng = random.Random(seed)
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    now = REFERENCE_DAY
    span = (LATEST_BIRTH - EARLIEST_BIRTH).days
    regions = [(code, share) for code, (_, _, share) in REGIONS.items()]
    numbers: set[str] = set()

    people: list[Resident] = []
    for index in range(residents):
        male = rng.random() < 0.5
        born = EARLIEST_BIRTH + timedelta(days=rng.randrange(span + 1))
        region = _weighted(rng, regions)
        passport = index >= residents - PASSPORTS
        if passport:  # adults who apply with a passport: the verifier sends them to review
            born = date(rng.randint(1966, 2000), rng.randint(1, 12), rng.randint(1, 28))
        while True:
            number = (f"E{rng.randrange(10**8):08d}" if passport
                      else resident_id_number(region, born, rng.randrange(500), male))
            if number not in numbers:
                numbers.add(number)
                break
        age = now.year - born.year
        if passport:
            channel = _weighted(rng, ((Channel.WEBSITE, 1), (Channel.MINI_PROGRAM, 1)))
        elif age >= 70:
            channel = _weighted(rng, ((Channel.WINDOW, 70), (Channel.KIOSK, 10), (Channel.OFFICIAL_ACCOUNT, 20)))
        else:
            channel = _weighted(rng, CHANNEL_SHARES)
        institution = None
        if channel == Channel.WINDOW:
            institution = _pick_institution(rng, "window", region)
        elif channel == Channel.KIOSK:
            institution = _pick_institution(rng, "kiosk", region)
        people.append(Resident(
            index=index,
            surname=fake.last_name(),
            given=fake.first_name_male() if male else fake.first_name_female(),
            sex="1" if male else "2",
            birth_date=born,
            region_code=region,
            document_type="03" if passport else "01",
            document_number=number,
            phone=fake.phone_number() if age >= 14 and rng.random() < 0.95 else None,
            address=_address(fake, rng, region),
            channel=channel,
            institution=institution,
        ))

    families: dict[int, list[int]] = {}
    spouse_taken: set[int] = set()

    def room(g: Resident) -> int:
        return family_limit - len(families.get(g.index, []))

    def bind(g: Resident, member: Resident, relation: str) -> None:
        families.setdefault(g.index, []).append(member.index)
        member.guardian, member.relation = g.index, relation
        if relation == "child":  # a child takes the guardian's surname and lives with them
            member.surname, member.address = g.surname, g.address
            member.phone = g.phone if member.age_on(now) < 14 or member.phone is None else member.phone
        if relation == "spouse":
            spouse_taken.update({g.index, member.index})

    def gap(older: Resident, younger: Resident) -> int:
        return younger.birth_date.year - older.birth_date.year

    ids_holders = [p for p in people if p.document_type == "01"]
    adults = [p for p in ids_holders if p.age_on(now) >= 18]
    minors = [p for p in ids_holders if p.age_on(now) < 18]
    elderly = [p for p in adults if p.age_on(now) >= 68]
    candidates = [p for p in adults if 25 <= p.age_on(now) <= 55]
    rng.shuffle(candidates)
    guardians = candidates[: max(1, round(len(adults) / 3))]
    guardian_set = {g.index for g in guardians}

    def free_spouse(g: Resident) -> Resident | None:
        options = [p for p in adults if p.index not in guardian_set and p.guardian is None
                   and p.index not in spouse_taken and p.sex != g.sex
                   and abs(gap(g, p)) <= 6 and p.age_on(now) >= 22]
        return rng.choice(options) if options else None

    # One full family, to show the limit: a guardian with children, both parents and a spouse.
    full_family = None
    for g in sorted(guardians, key=lambda p: abs(p.age_on(now) - 42)):
        kids = [m for m in minors if m.guardian is None and 22 <= gap(g, m) <= 40]
        olds = [e for e in elderly if e.guardian is None and e.index not in spouse_taken and 22 <= gap(e, g) <= 40]
        spouse = free_spouse(g)
        members = [(m, "child") for m in kids[:2]] + [(e, "parent") for e in olds[:2]]
        if spouse is not None:
            members.append((spouse, "spouse"))
        if len(members) >= family_limit:
            for member, relation in members[:family_limit]:
                bind(g, member, relation)
            full_family = g.index
            break

    def place(member: Resident, relation: str, lo: int, hi: int, cap: int) -> None:
        """Bind ``member`` to a guardian lo-hi years apart with fewer than ``cap`` of this relation,
        keeping one place free in every family; nobody fits, the member registers themself."""
        def fits(g: Resident) -> bool:
            years = gap(g, member) if relation == "child" else gap(member, g)
            same = sum(1 for i in families.get(g.index, []) if people[i].relation == relation)
            return room(g) > 1 and lo <= years <= hi and same < cap

        options = [g for g in guardians if fits(g)]
        if options:
            fewest = min(len(families.get(g.index, [])) for g in options)
            bind(rng.choice([g for g in options if len(families.get(g.index, [])) == fewest]), member, relation)

    for minor in rng.sample(minors, len(minors)):
        if minor.guardian is None:
            place(minor, "child", 20, 45, 3)
    for old in rng.sample(elderly, len(elderly)):
        if old.guardian is None and old.index not in spouse_taken and rng.random() < 0.6:
            place(old, "parent", 20, 42, 2)
    # Everyone counted as a guardian binds someone: a spouse when no child or parent came their way,
    # and about one in four binds a spouse anyway.
    for g in guardians:
        if g.index not in spouse_taken and room(g) > 1 and (g.index not in families or rng.random() < 0.25):
            spouse = free_spouse(g)
            if spouse is not None:
                bind(g, spouse, "spouse")

    # Newborns: the parent is an adult of child-bearing age with room in their family.
    babies: list[Baby] = []
    # Born within 300 days from a fixed day (so a seed always gives the same babies), or within the
    # last 300 days if the clock is earlier than that.
    newborn_from = NEWBORN_FROM if (today() - NEWBORN_FROM).days >= 300 else today() - timedelta(days=300)
    parents = [p for p in adults if 22 <= p.age_on(now) <= 40 and p.guardian is None]
    rng.shuffle(parents)
    n_babies = max(4, residents // 40)
    maternity = INSTITUTIONS.index(next(s for s in INSTITUTIONS if "妇幼" in s.name))
    for parent in parents:
        if len(babies) >= n_babies:
            break
        twins = not babies
        if room(parent) < (3 if twins else 2):  # keep one place free: a family is never left full by a baby
            continue
        born = newborn_from + timedelta(days=rng.randrange(300))
        for order in (1, 2) if twins else (1,):
            male = rng.random() < 0.5
            with_certificate = not twins and len(babies) % 2 == 0
            named = twins or rng.random() < 0.6
            at_window = with_certificate or rng.random() < 0.3
            babies.append(Baby(
                parent=parent.index,
                sex="1" if male else "2",
                birth_date=born,
                name=parent.surname + (fake.first_name_male() if male else fake.first_name_female()) if named else None,
                birth_certificate=f"{rng.choice('PQR')}{rng.randrange(10**9):09d}" if with_certificate else None,
                birth_order=order,
                multiple_birth=twins,
                channel=Channel.WINDOW if at_window else Channel.MINI_PROGRAM,
                institution=(maternity if rng.random() < 0.5 else _pick_institution(rng, "window", parent.region_code))
                if at_window else None,
            ))
            families.setdefault(parent.index, []).append(-1)  # the baby's place in the family

    # A few cards in other states, on residents who are no one's guardian or member.
    bystanders = [p for p in adults if p.guardian is None and p.index not in families and p.index not in spouse_taken]
    rng.shuffle(bystanders)
    changes: list[Change] = []
    passports = [p for p in people if p.document_type == "03"]
    changes.append(Change(passports[-2].index, "approve", "护照原件已核验"))
    changes.append(Change(passports[-1].index, "reject", "护照信息页照片不清晰，请携带护照原件到服务窗口办理"))
    for p in bystanders[:3]:
        changes.append(Change(p.index, "report_lost", "手机遗失，本人申请挂失"))
    if len(bystanders) > 2:
        changes.append(Change(bystanders[2].index, "reissue", "本人持身份证到窗口补办"))
    old_bystanders = [p for p in bystanders[3:] if p.age_on(now) >= 75] or bystanders[3:4]
    if old_bystanders:
        changes.append(Change(old_bystanders[0].index, "cancel", "持卡人已故，家属凭死亡证明申请注销"))

    bindings = [m for g in guardians for m in families.get(g.index, []) if m >= 0]
    bindings += [i for p in people if p.index not in guardian_set for i in families.get(p.index, []) if i >= 0]
    return DemoPlan(seed=seed, residents=people, bindings=bindings, babies=babies, changes=changes,
                    full_family=full_family)
