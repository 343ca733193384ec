"""django-q2 tasks: thin wrappers; membership rows are the durable state, tasks only nudge."""

from segments.membership import profiles_reevaluate, segment_memberships_refresh_all


def segment_memberships_refresh_task() -> dict:
    """Computed traits first (segments read them), then every published segment."""
    from segments.computed import computed_traits_refresh_all

    computed_traits_refresh_all()
    results = segment_memberships_refresh_all()
    return {
        result.segment: {"members": result.members, "entered": result.entered, "exited": result.exited}
        for result in results
    }


def segment_membership_refresh_task(*, segment_id: int) -> int:
    """One segment's members, after it was published (safe to run twice)."""
    from segments.membership import segment_membership_refresh
    from segments.models import Segment

    segment = Segment.objects.filter(pk=segment_id).first()
    return segment_membership_refresh(segment=segment).members if segment is not None else 0


def enqueue_membership_refresh(*, segment_id: int) -> None:
    from django_q.tasks import async_task

    async_task(
        "segments.tasks.segment_membership_refresh_task",
        segment_id=segment_id,
        q_options={"task_name": f"segment_membership_refresh_{segment_id}"},
    )


def profiles_reevaluate_task(*, profile_ids: list[int], event_types: list[str], trait_keys: list[str]) -> int:
    return profiles_reevaluate(profile_ids=profile_ids, event_types=event_types, trait_keys=trait_keys)


def enqueue_reevaluation(*, profile_ids: list[int], event_types: list[str], trait_keys: list[str]) -> None:
    """Called on commit of a processed batch: the worker re-evaluates those profiles soon after."""
    from django_q.tasks import async_task

    async_task(
        "segments.tasks.profiles_reevaluate_task",
        profile_ids=sorted(set(profile_ids)),
        event_types=sorted(set(event_types)),
        trait_keys=sorted(set(trait_keys)),
        q_options={"task_name": "segments_reevaluate"},
    )


def predictive_traits_refresh_task() -> dict:
    from segments.predictive import predictive_traits_refresh_all

    return predictive_traits_refresh_all()


def reevaluate_after_commit(*, profile_ids: list[int], event_types: list[str], trait_keys: list[str]) -> None:
    """Called by the processing worker once its batch has committed: re-evaluate right there (a
    queue hop would wait behind busy workers); if that fails, hand it to the queue instead. The
    scheduled refresh heals anything both miss."""
    import logging

    from segments.membership import profiles_reevaluate

    try:
        profiles_reevaluate(profile_ids=profile_ids, event_types=event_types, trait_keys=trait_keys)
    except Exception:
        logging.getLogger(__name__).exception("segments_reevaluate_failed; enqueued instead")
        enqueue_reevaluation(profile_ids=profile_ids, event_types=event_types, trait_keys=trait_keys)
