"""Probabilistic record linkage, pure: normalisation, blocking keys, comparison levels, EM, scoring.

Fellegi-Sunter: for each field, a comparison falls into a level (exact, close, different, or
missing). Each level has m = P(level | same person) and u = P(level | different people); a pair's
evidence is the sum of log2(m/u) over its non-missing fields, and its match probability follows
from that and the prior. m, u and the prior are fitted by expectation maximisation on the
candidate pairs themselves (a two-class mixture with conditionally independent fields), so no
labelled data is needed. Comparison vectors are aggregated into patterns, so EM costs
O(patterns x iterations), not O(pairs).

No ORM here: the live pass (services.py) and the evaluation (evaluation.py) both call these.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from identity.domain import DisjointSets

# -- normalisation ---------------------------------------------------------------------------

# Nickname -> formal name. Small on purpose: the common English diminutives that a typo
# measure cannot bridge (Bill/William, Peggy/Margaret). Both sides map to the formal name.
NICKNAMES: dict[str, str] = {
    "abby": "abigail", "al": "albert", "alex": "alexander", "andy": "andrew", "drew": "andrew",
    "tony": "anthony", "ben": "benjamin", "benny": "benjamin", "bob": "robert", "bobby": "robert",
    "rob": "robert", "robbie": "robert", "bert": "robert", "chris": "christopher", "kit": "christopher",
    "chuck": "charles", "charlie": "charles", "dan": "daniel", "danny": "daniel", "dave": "david",
    "davy": "david", "ed": "edward", "eddie": "edward", "ted": "edward", "ned": "edward",
    "fred": "frederick", "freddie": "frederick", "greg": "gregory", "hank": "henry", "harry": "henry",
    "jack": "john", "johnny": "john", "jim": "james", "jimmy": "james", "jamie": "james",
    "jerry": "gerald", "joe": "joseph", "joey": "joseph", "jon": "jonathan", "josh": "joshua",
    "ken": "kenneth", "kenny": "kenneth", "larry": "lawrence", "matt": "matthew", "mike": "michael",
    "mick": "michael", "mickey": "michael", "nick": "nicholas", "pat": "patrick", "pete": "peter",
    "phil": "philip", "ray": "raymond", "rich": "richard", "rick": "richard", "dick": "richard",
    "ron": "ronald", "ronnie": "ronald", "sam": "samuel", "steve": "steven", "stephen": "steven",
    "tom": "thomas", "tommy": "thomas", "tim": "timothy", "vince": "vincent", "walt": "walter",
    "bill": "william", "billy": "william", "will": "william", "liam": "william",
    "zach": "zachary", "beth": "elizabeth", "betty": "elizabeth", "liz": "elizabeth", "lizzie": "elizabeth",
    "eliza": "elizabeth", "libby": "elizabeth", "cathy": "catherine", "kathy": "catherine",
    "kate": "catherine", "katie": "catherine", "katherine": "catherine", "kathryn": "catherine",
    "cindy": "cynthia", "deb": "deborah", "debbie": "deborah", "jen": "jennifer", "jenny": "jennifer",
    "jess": "jessica", "jessie": "jessica", "maggie": "margaret", "meg": "margaret", "peggy": "margaret",
    "marge": "margaret", "mandy": "amanda", "mandi": "amanda", "pam": "pamela", "patty": "patricia",
    "trish": "patricia", "tricia": "patricia", "becky": "rebecca", "sue": "susan", "susie": "susan",
    "suzy": "susan", "sandy": "sandra", "vicky": "victoria", "tori": "victoria", "val": "valerie",
    "nancy": "ann", "annie": "ann", "anne": "ann", "molly": "mary", "polly": "mary", "dotty": "dorothy",
    "dot": "dorothy", "ellie": "eleanor", "nell": "eleanor", "nellie": "eleanor", "gwen": "gwendolyn",
    "sally": "sarah", "sara": "sarah", "tess": "theresa", "terri": "theresa", "teresa": "theresa",
    "chrissy": "christine", "tina": "christina", "nat": "natalie", "alexa": "alexandra", "sasha": "alexandra",
    "sandra": "sandra", "lou": "louis", "louie": "louis", "nico": "nicholas", "max": "maximilian",
}  # fmt: skip

_TITLES = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof", "sir", "jr", "sr", "ii", "iii"})
_STREET_WORDS = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr", "lane": "ln", "boulevard": "blvd",
    "court": "ct", "place": "pl", "terrace": "ter", "square": "sq", "highway": "hwy", "apartment": "apt",
    "suite": "ste", "north": "n", "south": "s", "east": "e", "west": "w",
}  # fmt: skip


def fold(text) -> str:
    """Lower case ASCII: accents dropped (José -> jose), so sources that strip them still agree."""
    if text is None:
        return ""
    decomposed = unicodedata.normalize("NFKD", str(text))
    return decomposed.encode("ascii", "ignore").decode("ascii").lower().strip()


def normalise_name_part(text) -> str:
    """Letters only: O'Brien, Mary-Jane and 'de la Cruz' compare on their letters."""
    return re.sub(r"[^a-z]", "", fold(text))


def split_full_name(full) -> tuple[str, str]:
    """'Ada Lovelace', 'Lovelace, Ada', 'Dr. Ada K. Lovelace' -> ('ada', 'lovelace')."""
    text = fold(full)
    if "," in text:
        last, _, first = text.partition(",")
        text = f"{first} {last}"
    words = [normalise_name_part(word) for word in text.split()]
    words = [word for word in words if word and word not in _TITLES]
    if not words:
        return "", ""
    if len(words) == 1:
        return words[0], ""
    return words[0], words[-1]


def canonical_first_name(name: str) -> str:
    return NICKNAMES.get(name, name)


def normalise_date(value) -> str:
    """YYYY-MM-DD as 'YYYYMMDD', or '' when absent or malformed."""
    text = fold(value)[:10]
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    return "".join(match.groups()) if match else ""


def normalise_postal_code(value) -> str:
    return re.sub(r"[^a-z0-9]", "", fold(value)).upper()


def normalise_address(value) -> str:
    if not isinstance(value, str):
        return ""
    words = re.sub(r"[^a-z0-9 ]", " ", fold(value)).split()
    return " ".join(_STREET_WORDS.get(word, word) for word in words)


def email_local_part(email: str) -> str:
    """The part before @, without a +tag: john.smith@work.com and john.smith+shop@gmail.com agree."""
    local = fold(email).partition("@")[0]
    return local.partition("+")[0]


def phone_suffix(phone: str) -> str:
    """Last 7 digits: the same number with a mis-parsed country or area code still agrees."""
    digits = re.sub(r"\D", "", str(phone or ""))
    return digits[-7:] if len(digits) >= 7 else ""


@dataclass(frozen=True)
class MatchRecord:
    """What probabilistic matching knows about one profile, normalised."""

    profile_id: int
    first_name: str = ""
    last_name: str = ""
    birth_date: str = ""  # YYYYMMDD
    postal_code: str = ""
    address: str = ""
    gender: str = ""
    email_locals: tuple[str, ...] = ()
    phone_suffixes: tuple[str, ...] = ()


def normalise_record(profile_id: int, traits: Mapping, *, emails: Iterable[str] = (), phones: Iterable[str] = ()):
    """A profile's traits and (cleartext) email and phone identifiers -> MatchRecord."""
    traits = traits or {}
    first, last = normalise_name_part(traits.get("first_name")), normalise_name_part(traits.get("last_name"))
    if not first or not last:
        full_first, full_last = split_full_name(traits.get("name"))
        first, last = first or full_first, last or full_last
    gender = fold(traits.get("gender"))[:1]
    locals_ = {email_local_part(email) for email in emails}
    suffixes = {phone_suffix(phone) for phone in phones}
    return MatchRecord(
        profile_id=profile_id,
        first_name=first,
        last_name=last,
        birth_date=normalise_date(traits.get("birthday")),
        postal_code=normalise_postal_code(traits.get("postal_code")),
        address=normalise_address(traits.get("address")),
        gender=gender if gender in ("f", "m") else "",
        email_locals=tuple(sorted(local for local in locals_ if len(local) >= 3)),
        phone_suffixes=tuple(sorted(suffix for suffix in suffixes if suffix)),
    )


# -- blocking --------------------------------------------------------------------------------

_SOUNDEX_CODES = {
    **dict.fromkeys("bfpv", "1"), **dict.fromkeys("cgjkqsxz", "2"), **dict.fromkeys("dt", "3"),
    "l": "4", **dict.fromkeys("mn", "5"), "r": "6",
}  # fmt: skip


def soundex(name: str) -> str:
    """American Soundex (Smith, Smyth -> S530): phonetic blocking survives most spelling errors."""
    letters = normalise_name_part(name)
    if not letters:
        return ""
    code, previous = letters[0].upper(), _SOUNDEX_CODES.get(letters[0], "")
    for letter in letters[1:]:
        digit = _SOUNDEX_CODES.get(letter, "")
        if digit and digit != previous:
            code += digit
        if letter not in "hw":  # h and w do not separate letters with the same code
            previous = digit
    return (code + "000")[:4]


def blocking_keys(record: MatchRecord) -> frozenset[str]:
    """The keys under which a record meets its candidates: two records are compared if they share one.

    Several independent keys, so a duplicate is found unless it is wrong in all of them: a typo
    in the surname's first letter still meets on date of birth + first name, a move still meets
    on date of birth, a missing date still meets on postcode.
    """
    keys = set()
    first_sound = soundex(canonical_first_name(record.first_name))
    last_sound = soundex(record.last_name)
    if record.postal_code and last_sound:
        keys.add(f"pc:{record.postal_code}:{last_sound}")
    if record.birth_date and last_sound:
        keys.add(f"dob:{record.birth_date}:{last_sound}")
    if record.birth_date and first_sound:
        keys.add(f"dobf:{record.birth_date}:{first_sound}")
    if first_sound and last_sound:
        # Order-free, so first and last names swapped between sources still meet. Common names
        # exceed the cap and drop out; rare ones find a duplicate that moved and lost its birthday.
        names = ":".join(sorted((first_sound, last_sound)))
        keys.add(f"nm:{names}")
        if record.postal_code:
            keys.add(f"np:{names}:{record.postal_code}")
    street = record.address.split()[:2]
    if len(street) == 2 and last_sound:
        # House number and street: the postcode may be missing.
        keys.add(f"ad:{' '.join(street)}:{last_sound}")
    # Letters only: alice.ryan and alice.ryan69 meet; the comparison still tells them apart.
    keys.update(f"em:{letters}" for letters in {re.sub(r"[^a-z]", "", local) for local in record.email_locals})
    keys.update(f"ph:{suffix}" for suffix in record.phone_suffixes)
    return frozenset(key[:200] for key in keys)


def candidate_pairs(keys_by_record: Mapping[int, Iterable[str]], *, cap: int) -> tuple[set[tuple[int, int]], int]:
    """In-memory blocking, the same rule as the SQL self-join: (pairs as (low, high), keys over the cap)."""
    members: dict[str, list[int]] = {}
    for record_id, keys in keys_by_record.items():
        for key in keys:
            members.setdefault(key, []).append(record_id)
    pairs, capped = set(), 0
    for ids in members.values():
        if len(ids) > cap:
            capped += 1
            continue
        ids = sorted(ids)
        for i, low in enumerate(ids):
            for high in ids[i + 1 :]:
                pairs.add((low, high))
    return pairs, capped


# -- comparison ------------------------------------------------------------------------------

# Each field's levels, best agreement first. A missing value on either side is level None: it
# carries no evidence either way.
FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("first_name", ("exact", "nickname_or_typo", "similar", "different")),
    ("last_name", ("exact", "typo", "similar", "different")),
    ("birth_date", ("exact", "one_edit", "different")),
    ("postal_code", ("exact", "same_area", "different")),
    ("address", ("exact", "similar", "different")),
    ("gender", ("exact", "different")),
    ("email_local", ("exact", "typo", "different")),
    ("phone_suffix", ("exact", "one_edit", "different")),
)
FIELD_NAMES = tuple(name for name, _ in FIELDS)
# Left out of the E step: among candidate pairs, "same address" is the strongest split of all
# (households, neighbours in one postcode block), and with a vote EM converges on it instead of on
# "same person" once the data grows (seen at 20,000 people). Their m and u are still fitted.
EM_HELD_OUT = frozenset({"postal_code", "address"})
LEVEL_NAMES = {name: levels for name, levels in FIELDS}
_POSTAL_CODE, _ADDRESS = FIELD_NAMES.index("postal_code"), FIELD_NAMES.index("address")

Pattern = tuple  # one level index (or None) per field in FIELDS


def _jaro_winkler(a: str, b: str) -> float:
    return JaroWinkler.similarity(a, b)


def compare_first_names(a: str, b: str) -> int | None:
    if not a or not b:
        return None
    if a == b:
        return 0
    if canonical_first_name(a) == canonical_first_name(b) or _jaro_winkler(a, b) >= 0.92:
        return 1
    return 2 if _jaro_winkler(a, b) >= 0.8 else 3


def compare_last_names(a: str, b: str) -> int | None:
    if not a or not b:
        return None
    if a == b:
        return 0
    similarity = _jaro_winkler(a, b)
    return 1 if similarity >= 0.92 else 2 if similarity >= 0.8 else 3


def compare_dates(a: str, b: str) -> int | None:
    """One edit covers a mistyped digit or swapped digits; day and month swapped counts as one too."""
    if not a or not b:
        return None
    if a == b:
        return 0
    day_month_swapped = a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6]
    return 1 if day_month_swapped or DamerauLevenshtein.distance(a, b) <= 1 else 2


def compare_postal_codes(a: str, b: str) -> int | None:
    if not a or not b:
        return None
    if a == b:
        return 0
    return 1 if a[:3] == b[:3] else 2


def compare_addresses(a: str, b: str) -> int | None:
    if not a or not b:
        return None
    if a == b:
        return 0
    return 1 if fuzz.token_sort_ratio(a, b) >= 85 else 2


def compare_exact(a: str, b: str) -> int | None:
    if not a or not b:
        return None
    return 0 if a == b else 1


def _best_level(values_a: tuple[str, ...], values_b: tuple[str, ...], compare) -> int | None:
    levels = [compare(a, b) for a in values_a for b in values_b]
    return min(levels) if levels else None


def compare_email_locals(a: str, b: str) -> int:
    if a == b:
        return 0
    return 1 if DamerauLevenshtein.distance(a, b) <= 1 and min(len(a), len(b)) >= 5 else 2


def compare_phone_suffixes(a: str, b: str) -> int:
    if a == b:
        return 0
    return 1 if DamerauLevenshtein.distance(a, b) <= 1 else 2


def _name_orientation_swapped(a: MatchRecord, b: MatchRecord) -> bool:
    """Whether b's first and last names are clearly the other way round (a source that swaps them)."""
    if not (a.first_name and a.last_name and b.first_name and b.last_name):
        return False
    straight = _jaro_winkler(a.first_name, b.first_name) + _jaro_winkler(a.last_name, b.last_name)
    swapped = _jaro_winkler(a.first_name, b.last_name) + _jaro_winkler(a.last_name, b.first_name)
    return swapped > straight + 0.3


def compare_records(a: MatchRecord, b: MatchRecord) -> Pattern:
    """The comparison vector of two records: one level index (or None) per field in FIELDS."""
    b_first, b_last = (b.last_name, b.first_name) if _name_orientation_swapped(a, b) else (b.first_name, b.last_name)
    return (
        compare_first_names(a.first_name, b_first),
        compare_last_names(a.last_name, b_last),
        compare_dates(a.birth_date, b.birth_date),
        compare_postal_codes(a.postal_code, b.postal_code),
        compare_addresses(a.address, b.address),
        compare_exact(a.gender, b.gender),
        _best_level(a.email_locals, b.email_locals, compare_email_locals),
        _best_level(a.phone_suffixes, b.phone_suffixes, compare_phone_suffixes),
    )


# -- term frequencies ------------------------------------------------------------------------

# Fields whose exact agreement is weighed by how common the agreed value is (as Splink does):
# two records that are both "Smith" say less than two that are both "Zyglowski".
TERM_FREQUENCY_FIELDS = ("first_name", "last_name", "postal_code")
# The least frequency a value is given, so one agreement on a unique value counts for at most
# log2(m / 1e-5), about 16.6 bits, however large the population grows.
TERM_FREQUENCY_FLOOR = 1e-5
_TERM_FREQUENCY_INDEXES = tuple(FIELD_NAMES.index(name) for name in TERM_FREQUENCY_FIELDS)

Frequencies = tuple  # per field in FIELDS: the agreed value's frequency, or None (not adjusted)


@dataclass(frozen=True)
class TermFrequencies:
    """How often each normalised value occurs among all records, per TERM_FREQUENCY_FIELDS field."""

    counts: Mapping[str, Mapping[str, int]]
    records: int

    def frequency(self, field: str, value: str) -> float:
        share = self.counts.get(field, {}).get(value, 0) / self.records if self.records else 0.0
        return max(share, TERM_FREQUENCY_FLOOR)


def term_frequencies(records: Iterable[MatchRecord]) -> TermFrequencies:
    """Count values while the records stream past: memory follows the distinct values, not the records."""
    counts: dict[str, dict[str, int]] = {name: {} for name in TERM_FREQUENCY_FIELDS}
    total = 0
    for record in records:
        total += 1
        for name in TERM_FREQUENCY_FIELDS:
            value = getattr(record, name)
            if value:
                counts[name][value] = counts[name].get(value, 0) + 1
    return TermFrequencies(counts=counts, records=total)


def agreed_frequencies(a: MatchRecord, pattern: Pattern, frequencies: TermFrequencies | None) -> Frequencies | None:
    """Per field, the frequency of the value both records hold where the field agrees exactly, else None.

    a's value is the agreed one: exact agreement means b holds it too (after a name swap, in the
    field compare_records aligned it with).
    """
    if frequencies is None:
        return None
    values = [None] * len(FIELDS)
    for index in _TERM_FREQUENCY_INDEXES:
        if pattern[index] == 0:
            values[index] = frequencies.frequency(FIELD_NAMES[index], getattr(a, FIELD_NAMES[index]))
    return tuple(values)


# -- the model -------------------------------------------------------------------------------

_FLOOR = 1e-6  # the prior stays strictly between 0 and 1


def _log2_odds(probability: float) -> float:
    return math.log2(probability / (1 - probability))


@dataclass(frozen=True)
class MatchModel:
    """Fitted Fellegi-Sunter parameters, for two populations of non-matches.

    m: P(level | match), from EM on the candidate pairs. u and prior: P(level | non-match) and
    P(match) among the candidate pairs, from the same EM; the non-matches there are mostly people
    who share a block (a household: same surname, address, landline). u_population and
    prior_population: the same for two profiles drawn at random (namesakes elsewhere), from a
    random sample of pairs. Conditional independence fails differently in each (agreeing on
    surname and address is weak evidence within a household and strong evidence between strangers,
    and the reverse holds for a first name), so a pair is scored under both and the lower score
    counts: a link needs the evidence to hold against both kinds of lookalike.
    """

    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    prior: float
    u_population: tuple[tuple[float, ...], ...] | None = None
    prior_population: float | None = None
    iterations: int = 0
    converged: bool = False
    pairs: int = 0
    random_pairs: int = 0
    home: MatchModel | None = None

    def _candidate_view(self, pattern: Pattern) -> MatchModel:
        """The candidate parameters for this pattern: those fitted on pairs sharing a home, if it does."""
        return self.home if self.home is not None and shares_home(pattern) else self

    def weight(
        self,
        field_index: int,
        level: int | None,
        *,
        population: bool = False,
        frequency: float | None = None,
        view: MatchModel | None = None,
    ) -> float:
        """log2(m/u): the evidence one field's level adds (0 for a missing value).

        With the agreed value's frequency (exact level of a TERM_FREQUENCY_FIELDS field), u is that
        frequency for two random people, as in Splink; within the candidates, u moves by the same
        ratio, frequency / random-pair u of the level, so both views weigh a rare value up and a
        common one down alike.
        """
        if level is None:
            return 0.0
        view = self if population or view is None else view
        u = (self.u_population if population else view.u)[field_index][level]
        if frequency is not None and level == 0 and self.u_population is not None:
            u = frequency if population else min(u * frequency / self.u_population[field_index][level], 1.0)
        return math.log2(view.m[field_index][level] / u)

    def _score(self, pattern: Pattern, frequencies: Frequencies | None, *, population: bool) -> float:
        view = self._candidate_view(pattern)
        prior = self.prior_population if population else view.prior
        frequencies = frequencies or (None,) * len(pattern)
        return _log2_odds(prior) + sum(
            self.weight(i, level, population=population, frequency=frequency, view=view)
            for i, (level, frequency) in enumerate(zip(pattern, frequencies, strict=True))
        )

    def candidate_score(self, pattern: Pattern, frequencies: Frequencies | None = None) -> float:
        return self._score(pattern, frequencies, population=False)

    def population_score(self, pattern: Pattern, frequencies: Frequencies | None = None) -> float | None:
        if self.u_population is None or self.prior_population is None:
            return None
        return self._score(pattern, frequencies, population=True)

    def _deciding_population(self, pattern: Pattern, frequencies: Frequencies | None) -> bool:
        population = self.population_score(pattern, frequencies)
        return population is not None and population < self.candidate_score(pattern, frequencies)

    def score(self, pattern: Pattern, frequencies: Frequencies | None = None) -> float:
        """Total evidence in bits (log2 odds of a match): the lower of the two populations' scores."""
        return self._score(pattern, frequencies, population=self._deciding_population(pattern, frequencies))

    def probability(self, pattern: Pattern, frequencies: Frequencies | None = None) -> float:
        return _probability(self.score(pattern, frequencies))

    def explain(self, pattern: Pattern, frequencies: Frequencies | None = None) -> dict:
        """Per present field: its level and the weight it added in the deciding population."""
        population = self._deciding_population(pattern, frequencies)
        frequencies = frequencies or (None,) * len(pattern)
        view = self._candidate_view(pattern)
        return {
            name: {
                "level": levels[level],
                "weight": round(self.weight(i, level, population=population, frequency=frequency, view=view), 3),
            }
            for i, ((name, levels), level, frequency) in enumerate(zip(FIELDS, pattern, frequencies, strict=True))
            if level is not None
        }

    def as_parameters(self) -> dict:
        def level_parameters(i: int, j: int) -> dict:
            values = {"m": _significant(self.m[i][j]), "u": _significant(self.u[i][j])}
            if self.u_population is not None:
                values["u_population"] = _significant(self.u_population[i][j])
            return values

        parameters = {
            "prior": self.prior,
            "prior_population": self.prior_population,
            "iterations": self.iterations,
            "converged": self.converged,
            "pairs": self.pairs,
            "random_pairs": self.random_pairs,
            "fields": {
                name: {level: level_parameters(i, j) for j, level in enumerate(levels)}
                for i, (name, levels) in enumerate(FIELDS)
            },
        }
        if self.home is not None:
            parameters["home"] = self.home.as_parameters()
        return parameters

    @classmethod
    def from_parameters(cls, parameters: Mapping) -> MatchModel:
        fields = parameters["fields"]

        def table(key: str):
            return tuple(tuple(fields[name][level][key] for level in levels) for name, levels in FIELDS)

        has_population = parameters.get("prior_population") is not None
        return cls(
            m=table("m"),
            u=table("u"),
            prior=parameters["prior"],
            u_population=table("u_population") if has_population else None,
            prior_population=parameters.get("prior_population"),
            iterations=parameters.get("iterations", 0),
            converged=parameters.get("converged", False),
            pairs=parameters.get("pairs", 0),
            random_pairs=parameters.get("random_pairs", 0),
            home=cls.from_parameters(parameters["home"]) if parameters.get("home") else None,
        )


def _significant(value: float) -> float:
    return float(f"{value:.6g}")  # readable JSON, and never rounded down to zero


def _probability(score: float) -> float:
    if score > 60:
        return 1.0
    return 1.0 / (1.0 + 2.0 ** (-score))


def initial_model() -> MatchModel:
    """Starting point for EM: matches mostly agree, non-matches mostly disagree. EM moves it from there."""
    m, u = [], []
    for _, levels in FIELDS:
        count = len(levels)
        m.append((0.9, *[0.1 / (count - 1)] * (count - 1)))
        u.append((0.1, 0.9) if count == 2 else (0.02, *[0.08 / (count - 2)] * (count - 2), 0.9))
    return MatchModel(m=tuple(m), u=tuple(u), prior=0.1)


def _normalised(counts: list[float]) -> tuple[float, ...]:
    # Add-one smoothing: a level never seen among (non-)matches gets the weight of one pair, not
    # an unbounded one, so a single agreeing field cannot outweigh everything else.
    smoothed = [max(count, 0.0) + 1.0 for count in counts]
    total = sum(smoothed)
    return tuple(value / total for value in smoothed)


def fit_em(
    pattern_counts: Mapping[Pattern, int],
    *,
    max_iterations: int = 100,
    tolerance: float = 1e-7,
    start: MatchModel | None = None,
    held_out: frozenset[str] = EM_HELD_OUT,
) -> MatchModel:
    """Expectation maximisation of m, u and the prior on unlabelled candidate comparison patterns.

    E step: each pattern's posterior P(match). M step: m (u) per level = the share of matches
    (non-matches) at that level among the pairs where the field is present. Stops when no
    parameter moves by more than `tolerance`.
    """
    model = start or initial_model()
    # Held-out fields do not vote in the E step (their m and u are still estimated).
    hide = tuple(i for i, name in enumerate(FIELD_NAMES) if name in held_out)

    def voting(pattern: Pattern) -> Pattern:
        return tuple(None if i in hide else level for i, level in enumerate(pattern)) if hide else pattern

    patterns = [(pattern, count) for pattern, count in pattern_counts.items() if count]
    total = sum(count for _, count in patterns)
    if not total:
        return model
    iteration, converged = 0, False
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
        m_counts = [[0.0] * len(levels) for _, levels in FIELDS]
        u_counts = [[0.0] * len(levels) for _, levels in FIELDS]
        matches = 0.0
        for pattern, count in patterns:
            posterior = _probability(model.candidate_score(voting(pattern)))
            matched, unmatched = count * posterior, count * (1 - posterior)
            matches += matched
            for i, level in enumerate(pattern):
                if level is not None:
                    m_counts[i][level] += matched
                    u_counts[i][level] += unmatched
        new = MatchModel(
            m=tuple(_normalised(counts) for counts in m_counts),
            u=tuple(_normalised(counts) for counts in u_counts),
            prior=min(max(matches / total, _FLOOR), 1 - _FLOOR),
        )
        change = max(
            abs(new.prior - model.prior),
            *(abs(x - y) for a, b in zip(new.m, model.m, strict=True) for x, y in zip(a, b, strict=True)),
            *(abs(x - y) for a, b in zip(new.u, model.u, strict=True) for x, y in zip(a, b, strict=True)),
        )
        model = new
        if change < tolerance:
            converged = True
            break
    return MatchModel(m=model.m, u=model.u, prior=model.prior, iterations=iteration, converged=converged, pairs=total)


def shares_home(pattern: Pattern) -> bool:
    """Same postcode, or the same or a similar address: where households and neighbours are the non-matches."""
    return pattern[_POSTAL_CODE] == 0 or pattern[_ADDRESS] in (0, 1)


def fit_em_by_home(pattern_counts: Mapping[Pattern, int], *, max_iterations: int = 100) -> MatchModel:
    """EM on all candidates, and separately on those that share a home.

    Conditional independence fails most between the two kinds of candidate non-match: people who
    share a home (a household: same surname, address, postcode; rarely the same first name or
    birthday) and people who share a name or birthday elsewhere (who seldom share an address).
    Fitted together, an exact first name looks weak (namesakes have it) and a shared address looks
    weak (households have it), so the true duplicate that has only a name and an address falls
    short. Fitted apart, each kind is weighed against its own lookalikes.
    """
    model = fit_em(pattern_counts, max_iterations=max_iterations)
    home_counts = {pattern: count for pattern, count in pattern_counts.items() if shares_home(pattern)}
    if not home_counts:
        return model
    return replace(model, home=fit_em(home_counts, max_iterations=max_iterations))


def estimate_u(pattern_counts: Mapping[Pattern, int]) -> tuple[tuple[float, ...], ...]:
    """u per level from random pairs: almost all of them are different people, so no EM is needed."""
    counts = [[0.0] * len(levels) for _, levels in FIELDS]
    for pattern, count in pattern_counts.items():
        for i, level in enumerate(pattern):
            if level is not None:
                counts[i][level] += count
    return tuple(_normalised(field_counts) for field_counts in counts)


def with_population(
    model: MatchModel, random_pattern_counts: Mapping[Pattern, int], *, candidate_pairs: int, possible_pairs: int
) -> MatchModel:
    """Add the whole-population view: u from random pairs, and the prior P(match) of two random
    profiles = the matches EM expects among the candidates / all possible pairs (blocking finds
    almost all matches, so few are missing from the numerator)."""
    expected_matches = model.prior * candidate_pairs
    prior_population = min(max(expected_matches / max(possible_pairs, 1), _FLOOR), 1 - _FLOOR)
    return MatchModel(
        m=model.m,
        u=model.u,
        prior=model.prior,
        home=model.home,
        u_population=estimate_u(random_pattern_counts),
        prior_population=prior_population,
        iterations=model.iterations,
        converged=model.converged,
        pairs=model.pairs,
        random_pairs=sum(random_pattern_counts.values()),
    )


def random_pairs(count: int, population: int, *, seed: int) -> list[tuple[int, int]]:
    """`count` pairs (i < j) of indexes into a population, seeded."""
    rng = random.Random(seed)
    pairs = []
    if population < 2:
        return pairs
    for _ in range(count):
        i, j = rng.sample(range(population), 2)
        pairs.append((min(i, j), max(i, j)))
    return pairs


# -- decisions -------------------------------------------------------------------------------

AUTO, REVIEW, NONE = "auto", "review", "none"


def decide(probability: float, *, auto_threshold: float, review_threshold: float) -> str:
    """Above auto: link and merge. Between: a person reviews. Below: nothing."""
    if probability >= auto_threshold:
        return AUTO
    if probability >= review_threshold:
        return REVIEW
    return NONE


def clusters(record_ids: Iterable[int], links: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Union-find: record id -> cluster representative, the profiles that linking would produce."""
    sets = DisjointSets(record_ids)
    for a, b in links:
        sets.union(a, b)
    return {record_id: sets.root(record_id) for record_id in sets.parent}


@dataclass(frozen=True)
class PairwiseMetrics:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 1.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def _pairs_within(groups: Mapping[int, list[int]]) -> int:
    return sum(len(members) * (len(members) - 1) // 2 for members in groups.values())


def pairwise_metrics(predicted: Mapping[int, int], truth: Mapping[int, int]) -> PairwiseMetrics:
    """Pairwise precision and recall of a clustering (record -> cluster) against the true one.

    Counted without enumerating pairs: the pairs both put together are the pairs within each
    (predicted cluster, true cluster) intersection.
    """
    predicted_groups: dict[int, list[int]] = {}
    truth_groups: dict[int, list[int]] = {}
    both: dict[tuple[int, int], list[int]] = {}
    for record_id, cluster in predicted.items():
        predicted_groups.setdefault(cluster, []).append(record_id)
        truth_groups.setdefault(truth[record_id], []).append(record_id)
        both.setdefault((cluster, truth[record_id]), []).append(record_id)
    true_positives = _pairs_within(both)
    return PairwiseMetrics(
        true_positives=true_positives,
        false_positives=_pairs_within(predicted_groups) - true_positives,
        false_negatives=_pairs_within(truth_groups) - true_positives,
    )
