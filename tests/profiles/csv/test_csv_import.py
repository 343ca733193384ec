import tracemalloc
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from identity.selectors import identifier_find
from profiles.csv_import import MappingInvalid, csv_import_create, csv_import_run, validate_mapping
from profiles.mappers import csv_rows
from profiles.models import CsvImport, Event, RawEvent
from profiles.processing import raw_events_process
from profiles.sources import source_create

pytestmark = pytest.mark.django_db

CSV = (
    "\ufeffEmail,First name,Phone,Joined,Amount,Newsletter,Order,Currency\n"
    "ada@example.com,Ada,+44 20 7946 0958,2025-03-01,12.50,yes,o-1,GBP\n"
    '"grace@example.com","Grace, Rear Admiral",,2025-03-02T09:30:00+01:00,"1,200.00",no,o-2,GBP\n'
    "broken,row\n"
    ",,,,,,,\n"
)


@pytest.fixture(autouse=True)
def fresh_mapping_cache():
    # Test databases reuse ids after a rollback; production never reuses an import id.
    csv_rows._mapping.cache_clear()


@pytest.fixture
def csv_source():
    return source_create(name="Backfill", kind="csv", slug="backfill")[0]


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "members.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


MAP = [
    "Email=identifier:email",
    "First name=trait:first_name",
    "Phone=identifier:phone",
    "Joined=occurred_at",
    "Amount=property:total",
    "Newsletter=consent:email_marketing",
    "Order=property:order_id",
    "Currency=property:currency",
]


def run_command(csv_file, *extra):
    args = ["import_csv", str(csv_file), "--source", "backfill", "--no-progress"]
    for item in MAP:
        args += ["--map", item]
    call_command(*args, *extra)


def test_command_imports_rows_as_raw_events_then_profiles(csv_source, csv_file, capsys):
    run_command(csv_file, "--event-type", "order.completed", "--timezone", "Europe/London")
    assert "2 rows stored as raw events, 1 rejected" in capsys.readouterr().out
    raw = RawEvent.objects.order_by("id").first()
    assert raw.payload["row"]["Email"] == "ada@example.com" and raw.payload["line"] == 2
    assert raw.topic == "order.completed"

    raw_events_process()
    assert RawEvent.objects.filter(status=RawEvent.PROCESSED).count() == 2, list(
        RawEvent.objects.values_list("error", flat=True)
    )
    ada = identifier_find(type_slug="email", raw_value="ada@example.com").profile
    assert ada == identifier_find(type_slug="phone", raw_value="+442079460958").profile
    assert ada.clear_traits["first_name"] == "Ada" and ada.consent["email_marketing"]["is_granted"] is True
    assert ada.lifetime_revenue == Decimal("12.50")
    event = Event.objects.get(profile=ada)
    assert event.occurred_at.isoformat() == "2025-03-01T00:00:00+00:00"  # midnight London in winter is UTC
    grace = identifier_find(type_slug="email", raw_value="grace@example.com").profile
    assert grace.clear_traits["first_name"] == "Grace, Rear Admiral" and grace.lifetime_revenue == Decimal("1200.00")
    assert Event.objects.get(profile=grace).properties["total"] == 1200.0


def test_reimporting_the_same_file_stores_nothing_new(csv_source, csv_file):
    run_command(csv_file)
    run_command(csv_file)
    assert RawEvent.objects.count() == 2
    assert CsvImport.objects.count() == 2


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"columns": {"Email": "identifier:fax"}}, "unknown identifier type 'fax'"),
        ({"columns": {"Nope": "identifier:email"}}, "column 'Nope' is not in the file"),
        ({"columns": {"Email": "trait:first_name"}}, "map at least one column to an identifier"),
        ({"columns": {"Email": "identifier:email", "Phone": "banana"}}, "unknown target 'banana'"),
        ({"columns": {"Email": "identifier:email"}, "event_type": "order.shipped"}, "unknown event type"),
        ({"columns": {"Email": "identifier:email"}, "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"columns": {"Email": "identifier:email", "Newsletter": "consent:carrier_pigeon"}}, "unknown consent purpose"),
    ],
)
def test_mapping_errors_are_clear_and_write_nothing(csv_source, csv_file, spec, message):
    with pytest.raises(MappingInvalid) as raised:
        csv_import_create(source=csv_source, path=csv_file, file_name="members.csv", spec=spec)
    assert any(message in error for error in raised.value.errors), raised.value.errors
    assert not CsvImport.objects.exists() and not RawEvent.objects.exists()


def test_command_reports_mapping_errors(csv_source, csv_file):
    with pytest.raises(CommandError, match="unknown identifier type"):
        call_command("import_csv", str(csv_file), "--source", "backfill", "--map", "Email=identifier:fax")
    with pytest.raises(CommandError, match="no source"):
        call_command("import_csv", str(csv_file), "--source", "nope", "--map", "Email=identifier:email")
    assert not RawEvent.objects.exists()


def test_rows_without_an_identifier_are_quarantined_with_the_line(csv_source, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Email,Name\n,Nobody\nz@example.com,Zed\n")
    csv_import = csv_import_create(
        source=csv_source,
        path=path,
        file_name="x.csv",
        spec={"columns": {"Email": "identifier:email", "Name": "trait:name"}},
    )
    csv_import_run(csv_import=csv_import)
    raw_events_process()
    statuses = dict(RawEvent.objects.values_list("payload__line", "status"))
    assert statuses == {2: "quarantined", 3: "processed"}
    assert "line 2: no identifier value" in RawEvent.objects.get(status="quarantined").error


def test_a_file_larger_than_the_memory_it_uses(csv_source, tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as handle:
        handle.write("Email,First name,City,Notes\n")
        for n in range(50_000):
            handle.write(f"person{n}@example.com,Name{n},City{n % 50},{'lorem ipsum ' * 8}\n")
    size = path.stat().st_size
    csv_import = csv_import_create(
        source=csv_source,
        path=path,
        file_name="big.csv",
        spec={"columns": {"Email": "identifier:email", "First name": "trait:first_name"}},
    )
    tracemalloc.start()
    result = csv_import_run(csv_import=csv_import)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.status == CsvImport.COMPLETED and result.rows_read == 50_000
    assert RawEvent.objects.filter(source=csv_source).count() == 50_000
    assert peak < size / 3, f"peak {peak} bytes for a {size}-byte file"


def test_upload_page_flow(client, make_user, csv_source, settings, tmp_path, django_capture):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(make_user("integration_engineer"))
    upload = SimpleUploadedFile("members.csv", CSV.encode(), content_type="text/csv")
    response = client.post(
        reverse("profiles:csv_import_new"),
        {"source": csv_source.pk, "file": upload, "event_type": "customer.imported", "timezone": "UTC"},
    )
    assert response.status_code == 200
    stored = response.context["stored_file"]
    assert [c for _, c, _ in response.context["columns"]][:2] == ["Email", "First name"]
    assert dict((c, t) for _, c, t in response.context["columns"])["Email"] == "identifier:email"

    bad = client.post(
        reverse("profiles:csv_import_new"),
        {
            "stored_file": stored,
            "source": csv_source.pk,
            "event_type": "customer.imported",
            "timezone": "UTC",
            "target_0": "identifier:fax",
        },
    )
    assert bad.status_code == 400 and "unknown identifier type" in bad.content.decode()

    form = {
        "stored_file": stored,
        "file_name": "members.csv",
        "source": csv_source.pk,
        "event_type": "customer.imported",
        "timezone": "UTC",
        "target_0": "identifier:email",
        "target_1": "trait:first_name",
        "target_2": "identifier:phone",
        "target_3": "occurred_at",
        "target_4": "ignore",
        "target_5": "consent:email_marketing",
        "target_6": "external_id",
        "target_7": "ignore",
    }
    with django_capture(execute=True):
        response = client.post(reverse("profiles:csv_import_new"), form)
    csv_import = CsvImport.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "profiles:csv_import_detail", args=[csv_import.pk]
    )
    csv_import.refresh_from_db()
    assert (csv_import.status, csv_import.rows_read, csv_import.progress_percent) == ("completed", 2, 100)
    assert set(RawEvent.objects.values_list("external_id", flat=True)) == {"o-1", "o-2"}
    progress = client.get(reverse("profiles:csv_import_progress", args=[csv_import.pk]), HTTP_HX_REQUEST="true")
    assert "Completed" in progress.content.decode() and "every 1s" not in progress.content.decode()
    assert client.get(reverse("profiles:csv_import_list")).status_code == 200


def test_progress_fragment_polls_while_running(client, make_user, csv_source, csv_file):
    csv_import = csv_import_create(
        source=csv_source, path=csv_file, file_name="m.csv", spec={"columns": {"Email": "identifier:email"}}
    )
    CsvImport.objects.filter(pk=csv_import.pk).update(status="running", bytes_read=csv_import.bytes_total // 2)
    client.force_login(make_user("integration_engineer"))
    html = client.get(reverse("profiles:csv_import_progress", args=[csv_import.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in html and "49%" in html or "50%" in html


def test_a_marketer_cannot_upload(client, make_user, csv_source):
    client.force_login(make_user("marketer"))
    upload = SimpleUploadedFile("m.csv", CSV.encode())
    response = client.post(reverse("profiles:csv_import_new"), {"source": csv_source.pk, "file": upload})
    assert response.status_code == 403
    assert not CsvImport.objects.exists() and not RawEvent.objects.exists()


def test_validate_mapping_normalises():
    result = validate_mapping(header=["Email"], spec={"columns": {"Email": " identifier:email "}})
    assert result == {"columns": {"Email": "identifier:email"}, "event_type": "customer.imported", "timezone": "UTC"}


@pytest.fixture
def django_capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks
