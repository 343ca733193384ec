"""Settings of the django-q2 worker the browser tests start (`manage.py qcluster`).

The application's own settings, pointed by DATABASE_URL at the test database, with two changes:
no scheduler, so only the tasks the journey enqueues run (a schedule firing mid-test, such as a
matching run, would make the pages depend on timing), and a short poll, so a task starts soon after
the page enqueued it. The broker is always the database (never Redis, even when REDIS_URL is set):
each test database then holds its own queue, so parallel test processes never take each other's tasks.
"""

from cdp_site.settings import *  # noqa: F403
from cdp_site.settings import Q_CLUSTER

Q_CLUSTER = {key: value for key, value in Q_CLUSTER.items() if key != "redis"}
Q_CLUSTER.update(orm="default", workers=1, scheduler=False, poll=0.1, sync=False)
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
