"""Labelled person records with the errors real sources have, for measuring the matching pass.

People live in households (spouses, children and twins share a surname, an address, a landline
and sometimes a birthday: the pairs a careless matcher merges). Each person appears in one to
five records across sources, each source with its own habits (full name only, swapped name
order, no birthday), and each record with independent errors: typos, transposed letters,
nicknames, missing fields, day and month swapped, a move to a new address, another email domain,
a phone number mis-parsed with the wrong country code.

Records model what the deterministic pass leaves behind: two records of one person never share a
complete email address or phone number (those would already be one profile). Seeded: the same
seed gives the same records.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate

from identity.matching.domain import NICKNAMES

FIRST_NAMES_F = (
    "mary patricia jennifer linda elizabeth barbara susan jessica sarah karen nancy lisa margaret betty sandra "
    "ashley dorothy kimberly emily donna michelle carol amanda melissa deborah stephanie rebecca laura sharon "
    "cynthia kathleen amy shirley angela helen anna brenda pamela nicole samantha katherine christine debra "
    "rachel catherine carolyn janet ruth maria heather diane virginia julie joyce victoria olivia kelly "
    "christina lauren joan evelyn judith megan cheryl andrea hannah martha jacqueline frances gloria ann "
    "teresa kathryn sara janice jean alice madison doris abigail julia judy grace denise amber marilyn "
    "beverly danielle theresa sophia marie diana brittany natalie isabella charlotte rose alexis kayla "
    "eleanor valerie gwendolyn alexandra"
).split()
FIRST_NAMES_M = (
    "james robert john michael david william richard joseph thomas charles christopher daniel matthew "
    "anthony mark donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward jason "
    "jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin samuel "
    "gregory alexander frank patrick raymond jack dennis jerry tyler aaron jose adam nathan henry douglas "
    "zachary peter kyle ethan walter noah jeremy christian keith roger terry gerald harold sean austin "
    "carl arthur lawrence dylan jesse jordan bryan billy joe bruce gabriel logan albert willie alan juan "
    "wayne elijah randy roy vincent ralph eugene russell bobby mason philip louis frederick"
).split()
LAST_NAMES = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez "
    "wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark "
    "ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green adams "
    "nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz parker "
    "cruz edwards collins reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper "
    "peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood james "
    "bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez "
    "powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales fisher vasquez "
    "simmons romero jordan patterson alexander hamilton graham reynolds griffin wallace moreno west cole "
    "hayes bryant herrera gibson ellis tran medina aguilar stevens murray ford castro marshall owens "
    "harrison fernandez mcdonald woods washington kennedy wells vargas henry chen freeman webb tucker "
    "guzman burns crawford olson simpson porter hunter gordon mendez silva shaw snyder mason dixon munoz "
    "hunt hicks holmes palmer wagner black robertson boyd rose stone salazar fox warren mills meyer rice "
    "schmidt garza daniels ferguson nichols stephens soto weaver ryan gardner payne grant dunn kelley "
    "spencer hawkins arnold pierce vazquez hansen peters santos hart bradley knight elliott cunningham "
    "duncan armstrong hudson carroll lane riley andrews alvarado ray delgado berry perkins hoffman "
    "johnston matthews pena richards willis carpenter lawrence sandoval obrien"
).split()

# -- name frequencies --------------------------------------------------------------------------
#
# Real names are heavy-tailed: the 270 commonest US surnames cover about a quarter of people, and
# there are more than 100,000 distinct ones; first names are more concentrated (the 100 commonest
# per sex cover roughly 60% of people born 1940-2005). Uniform draws from a few hundred names would
# make namesakes far more common than in real data, and a tail drawn from nothing would make them
# rarer. So each pool is a head (the lists above, commonest first) and a tail of plausible names
# built from syllables, and a name is drawn from the head with probability HEAD_SHARE, else from the
# tail, by Zipf-Mandelbrot rank weights 1 / (rank + offset) within each part:
#   surnames:    head 25% (Smith about 0.8% of people), tail 40,000 names (rank offset 500);
#   first names: head 60% per sex (Mary, James about 4%), tail 3,000 names per sex (offset 50).
# At 20,000 people that gives about 8,100 distinct surnames, and 4.5% of people share their first
# and last name with someone else. Nicknames exist for head names only (as for real rare names).
# Households, twins and every error below are as before.
SURNAME_HEAD_SHARE, SURNAME_TAIL_SIZE, SURNAME_HEAD_OFFSET, SURNAME_TAIL_OFFSET = 0.25, 40_000, 8, 500
FIRST_NAME_HEAD_SHARE, FIRST_NAME_TAIL_SIZE, FIRST_NAME_HEAD_OFFSET, FIRST_NAME_TAIL_OFFSET = 0.6, 3_000, 3, 50

_SURNAME_ONSETS = (
    "b bl br c ch cr d dr f fl fr g gl gr h j k kr l m n p pl pr r s sch sh sl st t th tr v w wh y z"
).split()
_SURNAME_VOWELS = "a e i o u ai ea ee ie oo ou ar er or".split()
_SURNAME_MIDDLES = "b ck d dd g l ll m n nd ng nn r rr s ss t tt v z st rk".split() + [""]
_SURNAME_ENDINGS = (
    "son sen man mann ley ton er ner ski sky ez es ford berg stein well wood field by ham ing en ard ett "
    "ini elli ova ic ich o a s dale worth more land ridge quist lund strom"
).split()
_FIRST_ONSETS = "b br c d f g h j k l m n p r s sh t th v w z".split()
_FIRST_VOWELS = "a e i o u ai ay ee".split()
_FIRST_MIDDLES = "l ll n nn r rl s v d m th".split() + [""]
_FIRST_ENDINGS_F = "a ia ina ette elle ine yn ie ey issa ora enna".split()
_FIRST_ENDINGS_M = "o an en on el er us ick ar ias iel ard".split()


def _built_names(parts: tuple[list[str], ...], *, count: int, exclude: set[str], seed: int) -> list[str]:
    """`count` distinct names from syllable combinations, in a seeded order (the order is the rank)."""
    rng, names, seen = random.Random(seed), [], set(exclude)
    while len(names) < count:
        name = "".join(rng.choice(part) for part in parts)
        if len(name) >= 3 and name not in seen and not re.search(r"(.)\1\1", name):
            seen.add(name)
            names.append(name)
    return names


@dataclass(frozen=True)
class NamePool:
    """Names with Zipf-Mandelbrot weights: the head with probability head_share, else the tail."""

    head: tuple[str, ...]
    tail: tuple[str, ...]
    head_share: float
    head_cumulative: tuple[float, ...]
    tail_cumulative: tuple[float, ...]

    @classmethod
    def build(cls, head, tail, *, head_share: float, head_offset: int, tail_offset: int) -> NamePool:
        return cls(
            head=tuple(head),
            tail=tuple(tail),
            head_share=head_share,
            head_cumulative=tuple(accumulate(1 / (rank + head_offset) for rank in range(1, len(head) + 1))),
            tail_cumulative=tuple(accumulate(1 / (rank + tail_offset) for rank in range(1, len(tail) + 1))),
        )

    def draw(self, rng: random.Random) -> str:
        if rng.random() < self.head_share:
            return rng.choices(self.head, cum_weights=self.head_cumulative)[0]
        return rng.choices(self.tail, cum_weights=self.tail_cumulative)[0]

    def share(self, name: str) -> float:
        """The probability that one draw is `name`."""
        for names, cumulative, share in (
            (self.head, self.head_cumulative, self.head_share),
            (self.tail, self.tail_cumulative, 1 - self.head_share),
        ):
            if name in names:
                rank = names.index(name)
                weight = cumulative[rank] - (cumulative[rank - 1] if rank else 0.0)
                return share * weight / cumulative[-1]
        return 0.0


STREETS = (
    "main oak pine maple cedar elm washington lake hill park view sunset river church willow highland "
    "jefferson lincoln madison franklin chestnut walnut spruce birch cherry dogwood meadow forest spring "
    "mill prospect ridge valley laurel hickory magnolia"
).split()
STREET_TYPES = ("Street", "Avenue", "Road", "Lane", "Drive", "Court", "Place", "Boulevard")
CITIES = (
    "Springfield Riverside Franklin Greenville Bristol Clinton Fairview Salem Madison Georgetown Arlington "
    "Ashland Dover Oxford Jackson Burlington Manchester Milton Newport Auburn"
).split()
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "proton.me")
WORK_DOMAINS = ("acme.com", "globex.com", "initech.com", "umbrella.com", "hooli.com", "contoso.com")
SOURCES = ("booking", "shop", "studio", "newsletter", "payments")

_HEAD_NAMES = set(FIRST_NAMES_F) | set(FIRST_NAMES_M) | set(LAST_NAMES) | set(NICKNAMES) | set(NICKNAMES.values())
SURNAMES = NamePool.build(
    LAST_NAMES,
    _built_names(
        (_SURNAME_ONSETS, _SURNAME_VOWELS, _SURNAME_MIDDLES, _SURNAME_ENDINGS),
        count=SURNAME_TAIL_SIZE,
        exclude=_HEAD_NAMES,
        seed=1,
    ),
    head_share=SURNAME_HEAD_SHARE,
    head_offset=SURNAME_HEAD_OFFSET,
    tail_offset=SURNAME_TAIL_OFFSET,
)
_FIRST_NAME_TAILS = {
    gender: _built_names(
        (_FIRST_ONSETS, _FIRST_VOWELS, _FIRST_MIDDLES, endings),
        count=FIRST_NAME_TAIL_SIZE,
        exclude=_HEAD_NAMES | set(SURNAMES.tail),
        seed=2,
    )
    for gender, endings in (("f", _FIRST_ENDINGS_F), ("m", _FIRST_ENDINGS_M))
}
FIRST_NAMES = {
    gender: NamePool.build(
        head,
        _FIRST_NAME_TAILS[gender],
        head_share=FIRST_NAME_HEAD_SHARE,
        head_offset=FIRST_NAME_HEAD_OFFSET,
        tail_offset=FIRST_NAME_TAIL_OFFSET,
    )
    for gender, head in (("f", FIRST_NAMES_F), ("m", FIRST_NAMES_M))
}

_FORMAL_TO_NICKNAMES: dict[str, list[str]] = {}
for _nickname, _formal in NICKNAMES.items():
    _FORMAL_TO_NICKNAMES.setdefault(_formal, []).append(_nickname)


@dataclass(frozen=True)
class Person:
    person_id: int
    first_name: str
    last_name: str
    gender: str
    birthday: date
    address: str
    postal_code: str
    city: str
    email_local: str
    phone: str  # national significant number, 10 digits


@dataclass(frozen=True)
class SyntheticRecord:
    record_id: int
    person_id: int
    source: str
    traits: dict = field(hash=False)
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()


# -- error models ----------------------------------------------------------------------------


def typo(rng: random.Random, text: str) -> str:
    """One keyboard error: substitution, deletion, insertion or two letters transposed."""
    if len(text) < 3:
        return text
    position = rng.randrange(1, len(text) - 1)  # the first letter is rarely wrong in practice
    kind = rng.choice(("substitute", "delete", "insert", "transpose"))
    letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
    if kind == "substitute":
        return text[:position] + letter + text[position + 1 :]
    if kind == "delete":
        return text[:position] + text[position + 1 :]
    if kind == "insert":
        return text[:position] + letter + text[position:]
    return text[:position] + text[position + 1] + text[position] + text[position + 2 :]


def digit_typo(rng: random.Random, digits: str) -> str:
    position = rng.randrange(len(digits))
    if rng.random() < 0.5 and position < len(digits) - 1:
        return digits[:position] + digits[position + 1] + digits[position] + digits[position + 2 :]
    return digits[:position] + str((int(digits[position]) + rng.randrange(1, 10)) % 10) + digits[position + 1 :]


def _title(name: str) -> str:
    return name[:1].upper() + name[1:]


# -- people ----------------------------------------------------------------------------------


class _Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.used_locals: set[str] = set()
        self.used_phones: set[str] = set()
        self.seen_identifiers: set[str] = set()

    def address(self) -> tuple[str, str, str]:
        rng = self.rng
        street = f"{rng.randrange(1, 9999)} {_title(rng.choice(STREETS))} {rng.choice(STREET_TYPES)}"
        if rng.random() < 0.15:
            street += f" Apt {rng.randrange(1, 40)}"
        # Few distinct postcodes, so many unrelated people share one (as in a real town).
        return street, f"{rng.randrange(100, 160)}{rng.randrange(0, 20):02d}", rng.choice(CITIES)

    def phone(self) -> str:
        while True:
            number = f"{self.rng.randrange(201, 990)}{self.rng.randrange(200, 999)}{self.rng.randrange(0, 9999):04d}"
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def email_local(self, first: str, last: str, birthday: date) -> str:
        rng = self.rng
        patterns = (
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}{last}{birthday.year % 100:02d}",
            f"{first}_{last}",
            f"{last}.{first}",
            f"{first}{rng.randrange(1, 999)}",
        )
        for candidate in patterns:
            if candidate not in self.used_locals:
                self.used_locals.add(candidate)
                return candidate
        return f"{first}.{last}{rng.randrange(1000, 99999)}"

    def birthday(self) -> date:
        return date(1940, 1, 1) + timedelta(days=self.rng.randrange(0, 365 * 65))

    def person(self, person_id: int, *, last_name=None, home=None, birthday=None, gender=None) -> Person:
        rng = self.rng
        gender = gender or rng.choice("fm")
        first = FIRST_NAMES[gender].draw(rng)
        last = last_name or SURNAMES.draw(rng)
        birthday = birthday or self.birthday()
        address, postal_code, city = home or self.address()
        return Person(
            person_id=person_id,
            first_name=first,
            last_name=last,
            gender=gender,
            birthday=birthday,
            address=address,
            postal_code=postal_code,
            city=city,
            email_local=self.email_local(first, last, birthday),
            phone=self.phone(),
        )

    def people(self, count: int) -> list[Person]:
        """count people, about 40% of them in households of two to four."""
        rng, people = self.rng, []
        while len(people) < count:
            head = self.person(len(people) + 1)
            people.append(head)
            if rng.random() < 0.2:
                home = (head.address, head.postal_code, head.city)
                for _ in range(rng.choice((1, 1, 2, 3))):
                    if len(people) >= count:
                        break
                    twin = rng.random() < 0.05
                    people.append(
                        self.person(
                            len(people) + 1,
                            last_name=head.last_name if rng.random() < 0.85 else None,
                            home=home,
                            birthday=head.birthday if twin else None,
                        )
                    )
        return people

    # -- records -----------------------------------------------------------------------------

    def first_name_variant(self, person: Person) -> str:
        rng, name = self.rng, person.first_name
        roll = rng.random()
        if roll < 0.15 and _FORMAL_TO_NICKNAMES.get(name):
            return rng.choice(_FORMAL_TO_NICKNAMES[name])
        if roll < 0.22:
            return typo(rng, name)
        return name

    def record(self, person: Person, record_id: int, source: str, index: int) -> SyntheticRecord:
        rng = self.rng
        first = self.first_name_variant(person) if index else person.first_name
        last = typo(rng, person.last_name) if index and rng.random() < 0.08 else person.last_name
        if index and rng.random() < 0.03:
            first, last = last, first  # a source that swaps the name columns
        traits: dict = {}
        if source == "shop" or rng.random() < 0.1:
            traits["name"] = (
                f"{_title(last)}, {_title(first)}" if rng.random() < 0.2 else f"{_title(first)} {_title(last)}"
            )
        else:
            if rng.random() > 0.03:
                traits["first_name"] = _title(first)
            traits["last_name"] = _title(last).upper() if rng.random() < 0.1 else _title(last)
        birthday = person.birthday.isoformat()
        if index and rng.random() < 0.05:
            digits = digit_typo(rng, birthday.replace("-", ""))
            birthday = f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
        elif index and rng.random() < 0.03 and person.birthday.day <= 12:
            birthday = f"{person.birthday.year}-{person.birthday.day:02d}-{person.birthday.month:02d}"
        if source != "newsletter" and rng.random() > 0.1:
            traits["birthday"] = birthday
        address, postal_code, city = person.address, person.postal_code, person.city
        if index and rng.random() < 0.12:
            address, postal_code, city = self.address()  # moved house
        if rng.random() > 0.1:
            traits["address"] = address.replace("Street", "St") if rng.random() < 0.3 else address
        if rng.random() > 0.1:
            traits["postal_code"] = postal_code
            traits["city"] = city
        if rng.random() < 0.7:
            traits["gender"] = person.gender
        traits["country"] = "US"
        return SyntheticRecord(
            record_id=record_id,
            person_id=person.person_id,
            source=source,
            traits=traits,
            emails=self.unseen(self.record_emails(person, index)),
            phones=self.unseen(self.record_phones(person, index)),
        )

    def unseen(self, values: tuple[str, ...]) -> tuple[str, ...]:
        """Drop a complete email or phone another record already has: the two would be one profile."""
        fresh = tuple(value for value in values if value not in self.seen_identifiers)
        self.seen_identifiers.update(fresh)
        return fresh

    def record_emails(self, person: Person, index: int) -> tuple[str, ...]:
        """Each record its own full address (equal ones would already be one profile)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            return ()
        domains = DOMAINS if index % 2 == 0 else WORK_DOMAINS
        domain = domains[(person.person_id + index) % len(domains)]
        local = person.email_local
        if index and roll < 0.25:
            local = typo(rng, local)
        elif index and roll < 0.35:
            local = f"{local}{rng.randrange(1, 99)}"  # a second address with another local part
        return (f"{local}@{domain}",)

    def record_phones(self, person: Person, index: int) -> tuple[str, ...]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            return ()
        if index == 0:
            return (f"+1{person.phone}",)
        if roll < 0.65:
            # The same number stored under another country code: a different identifier, same suffix.
            return (f"+44{person.phone}",)
        if roll < 0.75:
            return (f"+1{digit_typo(rng, person.phone)}",)
        return (f"+1{self.phone()}",)  # a new number


def generate(*, people: int, seed: int = 1) -> list[SyntheticRecord]:
    """Records of `people` people: 1 to 5 records each (mean about 2.1), from several sources."""
    generator = _Generator(seed)
    rng = generator.rng
    records: list[SyntheticRecord] = []
    for person in generator.people(people):
        count = rng.choices((1, 2, 3, 4, 5), weights=(35, 35, 18, 8, 4))[0]
        for index in range(count):
            source = SOURCES[(person.person_id + index) % len(SOURCES)]
            records.append(generator.record(person, len(records) + 1, source, index))
    rng.shuffle(records)
    return records
