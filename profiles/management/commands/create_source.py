import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from profiles.models import Source
from profiles.sources import source_create


class Command(BaseCommand):
    help = "Create a source non-interactively and print its slug and credentials as JSON (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, help="One of: " + ", ".join(dict(Source.KINDS)))
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug")
        parser.add_argument("--owner", help="Username of the owner.")
        parser.add_argument(
            "--signing-secret", help="For senders that dictate the secret (Shopify app secret, Mindbody key)."
        )

    def handle(self, *args, kind, name, slug, owner, signing_secret, **options):
        if kind not in dict(Source.KINDS):
            raise CommandError(f"unknown kind {kind!r}; choose one of: {', '.join(dict(Source.KINDS))}")
        if slug and Source.objects.filter(slug=slug).exists():
            raise CommandError(f"a source with slug {slug!r} exists already")
        owner_user = None
        if owner:
            owner_user = get_user_model().objects.filter(username=owner).first()
            if owner_user is None:
                raise CommandError(f"no user named {owner!r}")
        source, credentials = source_create(
            name=name, kind=kind, slug=slug, owner=owner_user, signing_secret=signing_secret
        )
        output = {"slug": source.slug, "kind": source.kind, "name": source.name}
        if credentials.write_key:
            output["write_key"] = credentials.write_key
        if credentials.signing_secret:
            output["signing_secret"] = credentials.signing_secret
            output["webhook_url_path"] = f"/webhooks/{source.slug}/"
        self.stdout.write(json.dumps(output))
