import os
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from cdp_site.roles import ROLES
from profiles import demo
from profiles.datagen import demo_sources, raw_events_write
from profiles.models import RawEvent
from profiles.processing import raw_events_process


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
        sources = demo_sources()
        if RawEvent.objects.filter(source__in=sources.values()).exists():
            self.stdout.write("Demo data already loaded.")
        else:
            self._load(sources, people, seed)
        from segments.demo import demo_segments_create

        created = demo_segments_create()
        if created:
            self.stdout.write(f"  demo audiences and computed traits: {', '.join(created)}")
        from activations.demo import demo_activations_create

        created = demo_activations_create()
        if created:
            self.stdout.write(f"  demo activations: {', '.join(created)}")
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

    def _load(self, sources, people, seed):
        self.stdout.write(f"Loading demo data for {people} people from four sources through the pipeline...")
        stored = raw_events_write(demo.all_sources(people, seed=seed), sources=sources)
        self.stdout.write(f"  stored {stored} raw events; processing")
        total = 0
        while True:
            result = raw_events_process(limit=5000)
            total += result.claimed
            if not result.claimed:
                break
            if sys.stdout.isatty():
                self.stdout.write(f"\r  processed {total}/{stored}", ending="")
        counts = dict(RawEvent.objects.values_list("status").annotate(n=Count("id")))
        self.stdout.write(f"\n  done: {counts}")
