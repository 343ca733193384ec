import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cdp_site.models import ApiToken


class Command(BaseCommand):
    help = "Issue a REST API token for a user and print it as JSON (shown once; stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for.")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        _, token = ApiToken.issue(user=user, name=name)
        self.stdout.write(json.dumps({"username": user.get_username(), "token": token}))
