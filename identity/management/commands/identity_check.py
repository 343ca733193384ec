import json

from django.core.management.base import BaseCommand

from identity.graph import identity_graph_check


class Command(BaseCommand):
    help = (
        "Check the identity invariants on the whole database: every identifier and event on an active "
        "profile, each profile one component over active links, merged profiles leading to an active one, "
        "no duplicated event. Exits 1 with the report when any fails; merge confidence drift is a warning."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--examples", type=int, default=50, help="Findings listed per kind (all are counted).")

    def handle(self, *args, **options):
        report = identity_graph_check(examples=options["examples"])
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            counts = ", ".join(f"{value:,} {name.replace('_', ' ')}" for name, value in report.counts.items())
            self.stdout.write(f"checked {counts} in {report.seconds:.1f} s")
            for title, findings, totals in (
                ("violations", report.violations, report.violation_counts),
                ("warnings", report.warnings, report.warning_counts),
            ):
                for kind, total in sorted(totals.items()):
                    listed = [f for f in findings if f.kind == kind]
                    more = f" ({total - len(listed):,} more not listed)" if total > len(listed) else ""
                    self.stdout.write(f"{title[:-1]}: {kind}: {total:,}{more}")
                    for finding in listed:
                        self.stdout.write(f"  {finding.message}")
            if report.is_consistent:
                self.stdout.write(self.style.SUCCESS("identity graph consistent"))
        if not report.is_consistent:
            # Exit status 1 (not CommandError's message-only output): the report is already printed.
            self.stderr.write(f"identity check failed: {sum(report.violation_counts.values()):,} violations")
            raise SystemExit(1)
