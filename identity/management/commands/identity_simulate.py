"""identity_simulate FILE[:SOURCE] ... [--mapping mapping.json] [--rules rules.json]: the simulation report as JSON."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from identity import domain
from identity.metrics import simulation_blocked_values, simulation_live_rules, simulation_region
from identity.simulation import MAX_ROWS_PER_FILE, DraftRule, SimulationInvalid, SourceInput, csv_rows, simulate


class Command(BaseCommand):
    help = (
        "Resolve sample CSV exports of two or more sources in memory, with the live or draft identity rules, and "
        "print match rates, merges by rule, conflicts and sample merged pairs as JSON. Nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE[:SOURCE]", help="A CSV export, and its source name.")
        parser.add_argument(
            "--mapping",
            help='JSON file: {"SOURCE": {"column": "identifier type slug" or "ignore"}}. Columns named like a type '
            "map themselves.",
        )
        parser.add_argument(
            "--rules",
            help='JSON file: {"slug": {"role": ..., "normaliser": ..., "limit_per_profile": ..., "priority": ...}}, '
            "over the live identifier types (a new slug adds a draft type).",
        )
        parser.add_argument("--max-rows", type=int, default=MAX_ROWS_PER_FILE, help="Rows read per file.")

    def handle(self, *args, files, mapping, rules, max_rows, **options):
        mappings = self._load_json(mapping) if mapping else {}
        draft_rules = self._rules(self._load_json(rules) if rules else {})
        handles, sources = [], []
        try:
            for spec in files:
                path_text, _, name = spec.partition(":")
                path = Path(path_text)
                if not path.is_file():
                    raise CommandError(f"No such file: {path}")
                name = name or path.stem
                handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 -- closed below
                handles.append(handle)
                sources.append(SourceInput(name=name, rows=csv_rows(handle), mapping=mappings.get(name, {})))
            report = simulate(
                sources,
                rules=draft_rules,
                blocked=simulation_blocked_values(),
                region=simulation_region(),
                max_rows=max_rows,
            )
        except SimulationInvalid as error:
            raise CommandError(str(error)) from error
        finally:
            for handle in handles:
                handle.close()
        for warning in report.warnings:
            self.stderr.write(warning)
        self.stdout.write(json.dumps(report.as_dict(), indent=2))

    @staticmethod
    def _load_json(path_text: str) -> dict:
        try:
            data = json.loads(Path(path_text).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CommandError(f"{path_text}: {error}") from error
        if not isinstance(data, dict):
            raise CommandError(f"{path_text}: expected a JSON object")
        return data

    @staticmethod
    def _rules(overrides: dict) -> list[DraftRule]:
        roles, normalisers = dict(domain.ROLES), dict(domain.NORMALISERS)
        rules = {rule.slug: rule for rule in simulation_live_rules()}
        for slug, fields in overrides.items():
            base = rules.get(slug) or DraftRule(
                slug=slug, role=domain.CANONICAL, normaliser=domain.EXACT, limit_per_profile=None
            )
            if not isinstance(fields, dict) or set(fields) - {"role", "normaliser", "limit_per_profile", "priority"}:
                raise CommandError(f"rules: {slug}: use role, normaliser, limit_per_profile and priority")
            rule = DraftRule(
                slug=slug,
                role=fields.get("role", base.role),
                normaliser=fields.get("normaliser", base.normaliser),
                limit_per_profile=fields.get("limit_per_profile", base.limit_per_profile),
                priority=fields.get("priority", base.priority),
            )
            if rule.role not in roles or rule.normaliser not in normalisers:
                raise CommandError(
                    f"rules: {slug}: role is one of {sorted(roles)}, normaliser one of {sorted(normalisers)}"
                )
            limit = rule.limit_per_profile
            if limit is not None and (not isinstance(limit, int) or limit < 1):
                raise CommandError(f"rules: {slug}: limit_per_profile is a whole number from 1, or null")
            if not isinstance(rule.priority, int):
                raise CommandError(f"rules: {slug}: priority is a whole number")
            rules[slug] = rule
        return list(rules.values())
