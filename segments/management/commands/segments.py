from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cdp_site.audit import audit_record
from segments.services import segments_apply, segments_export


class Command(BaseCommand):
    help = (
        "Keep audiences in git: `segments export DIR` writes one file per segment; "
        "`segments apply DIR [--dry-run]` creates new versions for changed files."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        export = actions.add_parser("export", help="Write DIR/<slug>.json for every segment.")
        export.add_argument("directory", type=Path)
        apply = actions.add_parser("apply", help="Create segments and versions from DIR/*.json.")
        apply.add_argument("directory", type=Path)
        apply.add_argument("--dry-run", action="store_true", help="Report what would change; write nothing.")
        apply.add_argument("--author", default="command:segments apply", help="Recorded as each version's author.")

    def handle(self, *args, action, directory, **options):
        if action == "export":
            paths = segments_export(directory=directory)
            for path in paths:
                self.stdout.write(str(path))
            audit_record(
                actor="command:segments export",
                action="export.segments",
                summary=f"Exported {len(paths)} segment definition{'s' if len(paths) != 1 else ''} to files",
                count=len(paths),
                slugs=sorted(path.stem for path in paths),
            )
            return
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory")
        results = segments_apply(directory=directory, author=options["author"], dry_run=options["dry_run"])
        if not results:
            raise CommandError(f"no *.json files in {directory}")
        for result in results:
            label = result.slug or result.path
            if result.errors:
                self.stdout.write(self.style.ERROR(f"{label}: invalid"))
                for error in result.errors:
                    self.stdout.write(f"  - {error}")
                continue
            would = "would be " if options["dry_run"] else ""
            described = {
                "created": f"{would}created",
                "new_version": f"{would}given a new version" + (f" (v{result.version})" if result.version else ""),
                "settings": f"settings {would}updated",
                "unchanged": "unchanged",
            }[result.action]
            self.stdout.write(f"{label}: {described}")
            if result.diff:
                self.stdout.write(result.diff.rstrip("\n"))
        if any(result.errors for result in results):
            raise CommandError("invalid files: nothing was applied")
