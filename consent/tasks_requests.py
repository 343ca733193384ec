"""django-q2 tasks for privacy requests: thin nudges. The request and its steps are the state."""


def privacy_request_run_task(request_id: int) -> str:
    from consent.requests import privacy_request_run

    return privacy_request_run(request_id=request_id).status


def privacy_requests_sweep_task() -> list[int]:
    """Every few minutes: resume requests whose task was lost (a killed worker, a dropped nudge)."""
    from consent.requests import privacy_requests_sweep

    return privacy_requests_sweep()
