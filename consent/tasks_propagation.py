"""django-q2 tasks for withdrawal propagation: thin wrappers. `SuppressionApplied` rows are the
durable state; a task is only a nudge, and the sweeper finds whatever a lost task missed."""

from consent.propagation import withdrawals_propagate, withdrawals_sweep


def withdrawals_propagate_task(*, consent_record_ids: list[int]) -> dict:
    return withdrawals_propagate(consent_record_ids=consent_record_ids)


def withdrawals_sweep_task() -> dict:
    """Scheduled every minute (Schedule "consent_withdrawals_sweep")."""
    return withdrawals_sweep()
