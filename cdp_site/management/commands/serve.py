import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from cdp_site.roles import ROLES


class Command(BaseCommand):
    help = "Run the web server and a django-q2 worker together; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args, port, host, **options):
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = [
            subprocess.Popen([*manage, "runserver", f"{host}:{port}", "--noreload"]),
            subprocess.Popen([*manage, "qcluster"]),
        ]
        self.stdout.write(f"\nCDP back-office: http://{host}:{port}/  (worker running; Ctrl-C stops both)")
        from profiles.management.commands.demo_setup import demo_password

        for role in (*ROLES, "admin"):
            self.stdout.write(f"  login {role:<22} password {demo_password(role)}")
        self.stdout.flush()

        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    self.stderr.write(f"{child.args[2]} exited with {child.returncode}; stopping.")
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.3)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if exit_code:
            sys.exit(exit_code)
