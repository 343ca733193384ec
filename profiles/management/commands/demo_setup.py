import os
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from cdp_site.roles import ROLES
from profiles import demo
from profiles.ingest import IncomingEvent, raw_events_store
from profiles.models import RawEvent, Source
from profiles.processing import raw_events_process
from profiles.sources import source_create

DEMO_SOURCE = "demo-web-app"


def demo_password(role: str) -> str:
    return os.environ.get("DEMO_PASSWORD") or f"demo-{role}-cdp"


class Command(BaseCommand):
    help = "Load demo data through the real pipeline (once) and ensure one demo login per role."

    def add_arguments(self, parser):
        parser.add_argument("--people", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, people, seed, **options):
        if settings.IS_PRODUCTION:
            raise CommandError("demo_setup refuses to run under production settings.")
        self._ensure_logins()
        source = Source.objects.filter(slug=DEMO_SOURCE).first()
        if source is None:
            source, _ = source_create(name="Demo web and app", kind=Source.TRACKING, slug=DEMO_SOURCE)
        if RawEvent.objects.filter(source=source).exists():
            self.stdout.write("Demo data already loaded.")
        else:
            self._load(source, people, seed)
        self.stdout.write("Logins (user / password):")
        for role in ROLES:
            self.stdout.write(f"  {role:<22} {demo_password(role)}")
        self.stdout.write(f"  {'admin':<22} {demo_password('admin')}  (superuser, /admin/)")

    def _ensure_logins(self):
        User = get_user_model()
        for role in ROLES:
            user, created = User.objects.get_or_create(username=role)
            if created:
                user.set_password(demo_password(role))
                user.save()
            user.groups.set([Group.objects.get(name=role)])
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", demo_password("admin"))

    def _load(self, source, people, seed):
        self.stdout.write(f"Loading demo data for {people} people through the ingestion pipeline...")
        chunk, stored = [], 0
        for message in demo.messages(people, seed=seed):
            chunk.append(IncomingEvent(external_id=message["messageId"], payload=message, topic=message["type"]))
            if len(chunk) == 2000:
                stored += self._store(source, chunk)
                chunk = []
        stored += self._store(source, chunk)
        self.stdout.write(f"  stored {stored} raw events; processing")
        total = 0
        while True:
            result = raw_events_process(limit=5000)
            total += result.claimed
            if not result.claimed:
                break
            if sys.stdout.isatty():
                self.stdout.write(f"\r  processed {total}/{stored}", ending="")
        self.stdout.write(f"\n  done: {total} raw events processed")

    def _store(self, source, chunk):
        if not chunk:
            return 0
        with transaction.atomic():
            # The demo processes synchronously below; no need to nudge a worker per chunk.
            raw_events_store(source=source, events=chunk)
        return len(chunk)
