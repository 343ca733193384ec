"""Create and run a deletion or access request from the command line:

manage.py privacy_request delete --regulation gdpr email:ana@example.com phone:+353015550100
manage.py privacy_request access --regulation ccpa email:ana@example.com
manage.py privacy_request retry 42
"""

from django.core.management.base import BaseCommand, CommandError

from consent.models import PrivacyRequest
from consent.requests import RequestInvalid, privacy_request_create, privacy_request_retry, privacy_request_run

ACTIONS = {"delete": PrivacyRequest.DELETION, "access": PrivacyRequest.ACCESS}


class Command(BaseCommand):
    help = "Create a deletion or access request and run it now (or retry a failed one by id)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=[*ACTIONS, "retry"])
        parser.add_argument("identifiers", nargs="+", help="type:value identifiers (retry: the request id).")
        parser.add_argument("--regulation", choices=[slug for slug, _ in PrivacyRequest.REGULATIONS], default="gdpr")
        parser.add_argument(
            "--background", action="store_true", help="Hand the request to a worker instead of running it here."
        )

    def handle(self, *args, **options):
        actor = "command:privacy_request"
        try:
            if options["action"] == "retry":
                if len(options["identifiers"]) != 1 or not options["identifiers"][0].isdigit():
                    raise CommandError("retry takes one request id")
                request = PrivacyRequest.objects.filter(pk=int(options["identifiers"][0])).first()
                if request is None:
                    raise CommandError("no such request")
                request = privacy_request_retry(request=request, actor=actor, enqueue=options["background"])
            else:
                request = privacy_request_create(
                    kind=ACTIONS[options["action"]],
                    regulation=options["regulation"],
                    identifiers=options["identifiers"],
                    actor=actor,
                    enqueue=options["background"],
                )
        except RequestInvalid as error:
            raise CommandError("; ".join(error.errors)) from error
        if options["background"]:
            self.stdout.write(f"request {request.pk} queued")
            return
        request = privacy_request_run(request_id=request.pk)
        for step in request.steps.all():
            counts = ", ".join(f"{k}={v}" for k, v in step.detail.items() if not isinstance(v, list | dict))
            self.stdout.write(f"  {step.name:<18} {step.outcome:<8} {counts}")
        self.stdout.write(f"request {request.pk}: {request.status}" + (f" ({request.error})" if request.error else ""))
        if request.archive_path:
            self.stdout.write(f"archive: {request.archive_path}")
        if request.status == PrivacyRequest.FAILED:
            raise CommandError(f"request {request.pk} failed: {request.error}")
