import json

import pytest
from django.core.management import call_command

from identity.graph import Finding, identity_graph_check
from identity.models import IdentityLink
from profiles.models import Event, Profile


def violations(report):
    return [(f.kind, f.message) for f in report.violations]


@pytest.mark.django_db
def test_a_database_built_by_processing_is_consistent(graph):
    report = identity_graph_check()

    assert report.is_consistent
    assert report.violations == [] and report.warnings == []
    assert report.counts == {
        "profiles": 3,
        "active_profiles": 2,
        "identifiers": 5,
        "active_links": 3,
        "components": 2,
        "events": 6,
    }


@pytest.mark.django_db
def test_identifier_on_a_merged_profile(graph):
    m2 = graph.ids["m2"]
    m2.profile = graph.c
    m2.save()

    report = identity_graph_check()

    assert not report.is_consistent
    assert violations(report) == [
        ("identifier_on_inactive_profile", f"identifier {m2.pk} belongs to merged profile {graph.c.pk}"),
        (
            "link_crosses_profiles",
            f"active link {graph.ids['u2'].pk}-{m2.pk} crosses profiles {graph.b.pk} and {graph.c.pk}",
        ),
    ]


@pytest.mark.django_db
def test_active_link_across_profiles(graph):
    d1, u2 = graph.ids["d1"], graph.ids["u2"]
    low, high = sorted((d1, u2), key=lambda i: i.pk)
    IdentityLink.objects.create(from_identifier=low, to_identifier=high, rule="test", created_at=d1.first_seen_at)

    report = identity_graph_check()

    assert violations(report) == [
        (
            "link_crosses_profiles",
            f"active link {low.pk}-{high.pk} crosses profiles {low.profile_id} and {high.profile_id}",
        )
    ]


@pytest.mark.django_db
def test_split_profile(graph):
    IdentityLink.objects.filter(pk=graph.link("u1", "d1").pk).update(status=IdentityLink.REJECTED)

    report = identity_graph_check()

    u1, d1 = sorted((graph.ids["u1"].pk, graph.ids["d1"].pk))
    assert violations(report) == [
        (
            "profile_split",
            f"profile {graph.a.pk}: its identifiers form 2 components over active links "
            f"(smallest identifier of each: {u1}, {d1})",
        )
    ]
    assert report.counts["components"] == 3


@pytest.mark.django_db
def test_event_on_an_inactive_profile(graph):
    Event.objects.filter(pk=graph.events["e4"].pk).update(profile=graph.c)

    report = identity_graph_check()

    assert violations(report) == [("event_on_inactive_profile", f"1 event belongs to merged profile {graph.c.pk}")]


@pytest.mark.django_db
def test_merged_profile_leading_nowhere(graph):
    Profile.objects.filter(pk=graph.c.pk).update(merged_into=None)
    deleted = Profile.objects.create(
        status=Profile.DELETED, created_at=graph.c.created_at, updated_at=graph.c.updated_at
    )
    chained = Profile.objects.create(
        status=Profile.MERGED, merged_into=deleted, created_at=graph.c.created_at, updated_at=graph.c.updated_at
    )

    report = identity_graph_check()

    assert violations(report) == [
        (
            "merged_profile_not_resolved",
            f"merged profile {graph.c.pk} leads to no active profile: profile {graph.c.pk} has no merged_into",
        ),
        (
            "merged_profile_not_resolved",
            f"merged profile {chained.pk} leads to no active profile: profile {deleted.pk} is deleted",
        ),
    ]


@pytest.mark.django_db
def test_merge_confidence_drift_is_a_warning_not_a_violation(graph):
    Profile.objects.filter(pk=graph.b.pk).update(merge_confidence=0.5)
    IdentityLink.objects.filter(pk=graph.link("u1", "d1").pk).update(confidence=0.8)

    report = identity_graph_check()

    assert report.is_consistent
    assert report.warnings == [
        Finding(
            "merge_confidence_differs",
            f"profile {graph.a.pk}: merge_confidence 1, but the weakest link holding it together has confidence 0.8",
        ),
        Finding(
            "merge_confidence_differs",
            f"profile {graph.b.pk}: merge_confidence 0.5, but the weakest link holding it together has confidence 1",
        ),
    ]


@pytest.mark.django_db
def test_findings_beyond_the_examples_are_counted(graph):
    Profile.objects.filter(pk=graph.b.pk).update(status=Profile.MERGED, merged_into=graph.a)

    report = identity_graph_check(examples=1)

    assert report.violation_counts == {
        "identifier_on_inactive_profile": 2,
        "event_on_inactive_profile": 1,
    }
    assert [f.kind for f in report.violations] == ["identifier_on_inactive_profile", "event_on_inactive_profile"]


@pytest.mark.django_db
def test_command_passes_on_a_consistent_database(graph, capsys):
    call_command("identity_check")

    assert "identity graph consistent" in capsys.readouterr().out


@pytest.mark.django_db
def test_command_exits_1_with_the_report(graph, capsys):
    Event.objects.filter(pk=graph.events["e4"].pk).update(profile=graph.c)

    with pytest.raises(SystemExit) as exit_info:
        call_command("identity_check")

    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "violation: event_on_inactive_profile: 1\n" in captured.out
    assert f"  1 event belongs to merged profile {graph.c.pk}\n" in captured.out
    assert "identity check failed: 1 violations" in captured.err


@pytest.mark.django_db
def test_command_json_report(graph, capsys):
    Event.objects.filter(pk=graph.events["e4"].pk).update(profile=graph.c)

    with pytest.raises(SystemExit):
        call_command("identity_check", "--json")

    report = json.loads(capsys.readouterr().out)
    assert report["is_consistent"] is False
    assert report["violation_counts"] == {"event_on_inactive_profile": 1}
    assert report["violations"] == [
        {"kind": "event_on_inactive_profile", "message": f"1 event belongs to merged profile {graph.c.pk}"}
    ]
