import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from cdp_site.models import ApiToken
from profiles.models import Source
from profiles.sources import signing_secrets, source_for_write_key

pytestmark = pytest.mark.django_db


def run(*args, capsys):
    call_command(*args)
    return json.loads(capsys.readouterr().out)


def test_create_tracking_source_prints_a_working_write_key(capsys):
    output = run("create_source", "--kind", "tracking", "--name", "Web SDK", capsys=capsys)
    assert set(output) == {"slug", "kind", "name", "write_key"}
    assert source_for_write_key(output["write_key"]).slug == output["slug"] == "web-sdk"
    source = Source.objects.get(slug="web-sdk")
    assert output["write_key"] not in (source.write_key_hash, source.write_key_prefix)


def test_create_webhook_source_prints_its_signing_secret(capsys):
    output = run("create_source", "--kind", "shopify", "--name", "Shop", "--signing-secret", "shpss_abc", capsys=capsys)
    assert output["signing_secret"] == "shpss_abc" and output["webhook_url_path"] == "/webhooks/shop/"
    assert signing_secrets(Source.objects.get(slug="shop")) == ["shpss_abc"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT signing_secrets FROM profiles_source WHERE slug = %s", ["shop"])
        stored = cursor.fetchone()[0]
    assert stored.startswith("gAAAA") and "shpss_abc" not in stored  # a Fernet token at rest


def test_create_source_rejects_bad_kind_and_duplicate_slug(capsys):
    with pytest.raises(CommandError, match="unknown kind"):
        call_command("create_source", "--kind", "ftp", "--name", "X")
    run("create_source", "--kind", "stripe", "--name", "Stripe", "--slug", "stripe", capsys=capsys)
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_source", "--kind", "stripe", "--name", "Stripe 2", "--slug", "stripe")


def test_create_api_token_prints_a_token_stored_hashed(capsys, django_user_model):
    django_user_model.objects.create_user("ops")
    output = run("create_api_token", "ops", capsys=capsys)
    assert output["username"] == "ops" and output["token"].startswith("cdp_")
    row = ApiToken.objects.get()
    assert row.token_hash == ApiToken.hash_token(output["token"]) and output["token"] != row.token_hash
    with pytest.raises(CommandError, match="no user"):
        call_command("create_api_token", "nobody")
