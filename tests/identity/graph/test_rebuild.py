import pytest

from identity.graph import identity_graph_check, identity_graph_rebuild
from identity.models import Identifier, IdentityLink, Merge
from profiles.models import Event, Profile


@pytest.mark.django_db
def test_rebuild_of_a_consistent_graph_finds_nothing_and_changes_nothing(graph):
    before = list(Identifier.objects.order_by("pk").values_list("pk", "profile_id"))

    report = identity_graph_rebuild(apply=True)

    assert (report.identifiers, report.active_links, report.components) == (5, 3, 2)
    assert report.is_consistent
    assert (report.identifiers_moved, report.events_moved, report.profiles_created, report.profiles_merged) == (
        0,
        0,
        0,
        0,
    )
    assert list(Identifier.objects.order_by("pk").values_list("pk", "profile_id")) == before


@pytest.mark.django_db
def test_dry_run_reports_a_lost_merge_without_repairing_it(graph):
    stray = Profile.objects.create(created_at=graph.b.created_at, updated_at=graph.b.updated_at)
    Identifier.objects.filter(pk=graph.ids["m2"].pk).update(profile=stray)

    report = identity_graph_rebuild(apply=False)

    assert (report.affected_components, report.spread_components, report.split_profiles) == (1, 1, 0)
    assert report.identifiers_moved == 0
    assert Identifier.objects.get(pk=graph.ids["m2"].pk).profile_id == stray.pk


@pytest.mark.django_db
def test_repairs_a_merge_whose_rows_were_never_moved(graph):
    # As if the merge of c into b had recorded its link but moved nothing: m2 and its event stay on
    # a profile of their own.
    stray = Profile.objects.create(created_at=graph.b.created_at, updated_at=graph.b.updated_at)
    Identifier.objects.filter(pk=graph.ids["m2"].pk).update(profile=stray)
    Event.objects.filter(pk=graph.events["e4"].pk).update(profile=stray)
    assert not identity_graph_check().is_consistent

    report = identity_graph_rebuild(apply=True)

    assert (report.affected_components, report.spread_components, report.split_profiles) == (1, 1, 0)
    assert (report.identifiers_moved, report.events_moved, report.profiles_created, report.profiles_merged) == (
        1,
        1,
        0,
        1,
    )
    # Tie (one identifier each): the lower profile id keeps the component.
    assert Identifier.objects.get(pk=graph.ids["m2"].pk).profile_id == graph.b.pk
    assert Event.objects.get(pk=graph.events["e4"].pk).profile_id == graph.b.pk
    stray.refresh_from_db()
    assert (stray.status, stray.merged_into_id) == (Profile.MERGED, graph.b.pk)
    assert identity_graph_check().violations == []
    # Audited like a merge, and the surviving profile rebuilt from what it now holds.
    merge = Merge.objects.get(absorbed=stray)
    assert (merge.survivor_id, merge.rule, merge.actor) == (graph.b.pk, "graph_rebuild", "rule:graph_rebuild")
    assert report.profiles_recomputed == 1
    graph.b.refresh_from_db()
    assert graph.b.first_seen_at == min(Event.objects.filter(profile=graph.b).values_list("occurred_at", flat=True))


@pytest.mark.django_db
def test_repairs_a_split_whose_rows_were_never_moved(graph):
    # As if an unmerge had cut the d1-u1 link but left d1 on the profile.
    IdentityLink.objects.filter(pk=graph.link("d1", "u1").pk).update(status=IdentityLink.REJECTED)
    assert not identity_graph_check().is_consistent

    report = identity_graph_rebuild(apply=True)

    assert (report.affected_components, report.spread_components, report.split_profiles) == (2, 0, 1)
    assert (report.identifiers_moved, report.events_moved, report.profiles_created, report.profiles_merged) == (
        1,
        1,
        1,
        0,
    )
    # The larger part (u1 and the email) keeps the profile; d1 and the event it arrived with move
    # to a new profile.
    assert Identifier.objects.get(pk=graph.ids["u1"].pk).profile_id == graph.a.pk
    assert Identifier.objects.get(pk=graph.ids["email"].pk).profile_id == graph.a.pk
    new_profile = Identifier.objects.get(pk=graph.ids["d1"].pk).profile
    assert new_profile.pk not in (graph.a.pk, graph.b.pk, graph.c.pk)
    assert new_profile.status == Profile.ACTIVE
    assert Event.objects.get(pk=graph.events["e0"].pk).profile_id == new_profile.pk
    assert identity_graph_check().violations == []


@pytest.mark.django_db
def test_repairs_identifiers_left_on_a_merged_profile(graph):
    Identifier.objects.filter(pk__in=[graph.ids["u2"].pk, graph.ids["m2"].pk]).update(profile=graph.c)
    Event.objects.filter(profile=graph.b).update(profile=graph.c)

    report = identity_graph_rebuild(apply=True)

    assert (report.affected_components, report.inactive_profile_components) == (1, 1)
    # No active profile holds any of the component: it gets a new one, and c is merged into it.
    new_profile = Identifier.objects.get(pk=graph.ids["u2"].pk).profile
    assert report.profiles_created == 1 and new_profile.status == Profile.ACTIVE
    assert Identifier.objects.get(pk=graph.ids["m2"].pk).profile_id == new_profile.pk
    assert set(Event.objects.filter(profile=new_profile).values_list("pk", flat=True)) == {
        graph.events[name].pk for name in ("e3", "e4", "e5")
    }
    graph.c.refresh_from_db()
    assert (graph.c.status, graph.c.merged_into_id) == (Profile.MERGED, new_profile.pk)
    # b lost nothing it held (it held nothing): an empty active profile is only a warning.
    report = identity_graph_check()
    assert report.violations == []
    assert [f.kind for f in report.warnings] == ["profile_without_identifiers"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_outside_a_transaction_both_read_one_snapshot(graph):
    # Outermost, the check runs REPEATABLE READ, READ ONLY and the dry run REPEATABLE READ (it
    # writes temporary tables) on PostgreSQL; nothing may be left behind.
    assert identity_graph_check().is_consistent
    report = identity_graph_rebuild(apply=False)
    assert (report.identifiers, report.components, report.affected_components) == (5, 2, 0)
    assert identity_graph_rebuild(apply=True).is_consistent
