"""Segment versions, publishing, rollback and the file round trip, on the real database."""

import json

import pytest
from django.core.management import CommandError, call_command

from profiles.processing import raw_events_process
from segments.models import Segment, SegmentVersion
from segments.selectors import segment_preview
from segments.services import (
    SegmentDefinitionInvalid,
    segment_create,
    segment_rollback,
    segment_version_create,
    segments_apply,
    segments_export,
)
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db

PARIS = {"trait": "city", "op": "eq", "value": "Paris"}
LONDON = {"trait": "city", "op": "eq", "value": "London"}


@pytest.fixture
def people(send):
    for n, city in enumerate(["Paris", "Paris", "London"]):
        send(event("page.viewed", ids=[("email", f"p{n}@example.com")], traits={"city": city}))
    raw_events_process()


def test_create_versions_publish_and_rollback(people):
    segment = segment_create(slug="paris", name="Paris", definition=PARIS, note="first", author="user:mo")
    assert segment.published_version.number == 1
    assert segment_preview(definition=segment.published_version.definition)["count"] == 2

    version, created = segment_version_create(segment=segment, definition=LONDON, note="moved", author="user:mo")
    assert (version.number, created) == (2, True)
    segment.refresh_from_db()
    assert segment.published_version == version
    assert segment_preview(definition=version.definition)["count"] == 1

    # Saving the same definition again writes nothing.
    same, created = segment_version_create(segment=segment, definition=LONDON, note="again", author="user:mo")
    assert (same.pk, created) == (version.pk, False)

    rolled = segment_rollback(segment=segment, number=1, author="user:mo")
    segment.refresh_from_db()
    assert (rolled.number, rolled.definition, segment.published_version_id) == (3, PARIS, rolled.pk)
    assert rolled.note == "Rollback to version 1"
    assert list(segment.versions.order_by("number").values_list("number", flat=True)) == [1, 2, 3]


def test_versions_are_immutable(people):
    segment = segment_create(slug="paris", name="Paris", definition=PARIS, note="first", author="user:mo")
    version = segment.published_version
    version.note = "changed"
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    with pytest.raises(ValueError, match="immutable"):
        version.delete()


def test_an_invalid_definition_is_refused_and_nothing_is_written():
    with pytest.raises(SegmentDefinitionInvalid) as problem:
        segment_create(
            slug="bad", name="Bad", definition={"trait": "city", "op": "greater", "value": 1}, note="x", author="u"
        )
    assert [error.path for error in problem.value.errors] == ["op"]
    assert Segment.objects.count() == 0 and SegmentVersion.objects.count() == 0


def test_a_segment_cannot_refer_to_itself_through_another(people):
    segment_create(slug="paris", name="Paris", definition=PARIS, note="first", author="u")
    segment_create(slug="fans", name="Fans", definition={"segment": "paris"}, note="first", author="u")
    paris = Segment.objects.get(slug="paris")
    with pytest.raises(SegmentDefinitionInvalid):
        segment_version_create(segment=paris, definition={"segment": "fans"}, note="loop", author="u")
    assert paris.versions.count() == 1


def test_export_then_apply_round_trip_with_dry_run(people, tmp_path):
    segment_create(slug="paris", name="Paris", definition=PARIS, note="first", author="u")
    written = segments_export(directory=tmp_path)
    assert [path.name for path in written] == ["paris.json"]
    document = json.loads(written[0].read_text())
    assert document["definition"] == PARIS and document["holdout_percent"] == 0

    # Nothing changed: nothing to apply.
    assert [result.action for result in segments_apply(directory=tmp_path, author="git")] == ["unchanged"]

    # A changed file and a new one referring to it (applied in dependency order).
    document["definition"] = LONDON
    written[0].write_text(json.dumps(document))
    (tmp_path / "fans.json").write_text(
        json.dumps({"slug": "fans", "name": "Fans", "definition": {"segment": "paris"}})
    )
    planned = segments_apply(directory=tmp_path, author="git", dry_run=True)
    assert {result.slug: result.action for result in planned} == {"paris": "new_version", "fans": "created"}
    assert '-  "value": "Paris"' in planned[1].diff and '+  "value": "London"' in planned[1].diff
    assert Segment.objects.count() == 1 and SegmentVersion.objects.count() == 1  # the dry run wrote nothing

    applied = segments_apply(directory=tmp_path, author="git")
    assert {result.slug: (result.action, result.version) for result in applied} == {
        "paris": ("new_version", 2),
        "fans": ("created", 1),
    }
    assert Segment.objects.get(slug="paris").published_version.author == "git"


def test_apply_refuses_everything_when_one_file_is_invalid(people, tmp_path):
    (tmp_path / "good.json").write_text(json.dumps({"slug": "good", "name": "Good", "definition": PARIS}))
    (tmp_path / "bad.json").write_text(
        json.dumps({"slug": "bad", "name": "Bad", "definition": {"event": "order.complete"}})
    )
    (tmp_path / "broken.json").write_text("{not json")
    results = {result.path.rsplit("/", 1)[-1]: result for result in segments_apply(directory=tmp_path, author="git")}
    assert results["bad.json"].action == "invalid" and "order.complete" in results["bad.json"].errors[0]
    assert "not a readable JSON file" in results["broken.json"].errors[0]
    assert Segment.objects.count() == 0


def test_segments_command(people, tmp_path, capsys):
    segment_create(slug="paris", name="Paris", definition=PARIS, note="first", author="u")
    call_command("segments", "export", str(tmp_path))
    document = json.loads((tmp_path / "paris.json").read_text())
    document["definition"] = LONDON
    (tmp_path / "paris.json").write_text(json.dumps(document))
    call_command("segments", "apply", str(tmp_path), "--dry-run")
    assert "paris: would be given a new version" in capsys.readouterr().out
    assert Segment.objects.get(slug="paris").versions.count() == 1
    call_command("segments", "apply", str(tmp_path))
    assert "paris: given a new version (v2)" in capsys.readouterr().out
    (tmp_path / "oops.json").write_text(json.dumps({"slug": "oops", "name": "Oops", "definition": {"x": 1}}))
    with pytest.raises(CommandError, match="nothing was applied"):
        call_command("segments", "apply", str(tmp_path))
