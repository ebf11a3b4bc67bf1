"""`python3 manage.py demo`: the whole app on the embedded default stack, in one command.

Migrates the SQLite database, pretrains the demo base model on first use (cached afterwards),
seeds demo users and projects, starts a Celery worker (with beat) on the local filesystem broker,
and serves the site with DEBUG off (the site's own 404/403/500 pages, never Django's debug pages).
Ctrl+C stops everything.
"""
import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.devservices import wait_for_port
from labeling.services.demo import demo_seed

LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


def server_env(addr: str, environ: dict | None = None) -> dict:
    """The web server's environment: DEBUG off unless the caller set DEBUG, and the address served on
    among the allowed hosts (any host when bound to every interface) unless ALLOWED_HOSTS is set."""
    environ = dict(os.environ if environ is None else environ)
    host = addr.rpartition(":")[0] or "127.0.0.1"
    hosts = ["*"] if host in ("0.0.0.0", "[::]") else LOCAL_HOSTS + ([host] if host not in LOCAL_HOSTS else [])
    return {"DEBUG": "0", "ALLOWED_HOSTS": ",".join(hosts), **environ, "RLHF_SKIP_BOOTSTRAP": "1"}


class Command(BaseCommand):
    help = "Run the app with demo data on the embedded default stack (SQLite, filesystem broker)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="address:port to serve on")
        parser.add_argument("--seed-only", action="store_true", help="migrate and seed, then exit")
        parser.add_argument("--no-worker", action="store_true", help="do not start the Celery worker")
        parser.add_argument("--no-base", action="store_true",
                            help="skip pretraining the demo base: rounds start from random weights (byte noise)")

    def handle(self, *args, **options):
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        settings.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
            if folder:
                os.makedirs(folder, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        base_model = None
        if not options["no_base"]:
            from training.services.demo_base import demo_base_ensure

            base_model = str(demo_base_ensure(log=lambda line: self.stdout.write(line)))
        logins = demo_seed(base_model=base_model)
        if options["seed_only"]:
            self.stdout.write(self.style.SUCCESS("Demo data ready."))
            return

        children = []
        if not options["no_worker"]:
            # C_FORCE_ROOT: the demo may run as root in a container; production workers should not.
            env = {**os.environ, "RLHF_SKIP_BOOTSTRAP": "1", "C_FORCE_ROOT": "1", "PYTHONWARNINGS": "ignore"}
            celery = [sys.executable, "-m", "celery", "-A", "config", "--quiet", "worker", "--loglevel", "WARNING"]
            # Two workers, as in production: training runs never delay the reaper and light tasks.
            children.append(subprocess.Popen(
                [*celery, "-Q", "default", "-n", "default@%h", "--concurrency", "1", "-B",
                 "-s", str(settings.VAR_DIR / "celerybeat-schedule")], env=env))
            children.append(subprocess.Popen(
                [*celery, "-Q", "training", "-n", "training@%h", "--concurrency", "1", "--prefetch-multiplier", "1",
                 "--max-tasks-per-child", "1"], env=env))
        call_command("collectstatic", interactive=False, verbosity=0)
        url = f"http://{options['addr']}/"
        lines = ["", "=" * 64, f"  RLHF labeling demo is up: {url}", "", "  Logins (username / password, role):"]
        lines += [f"    {l.username:<12} / {l.password:<16} {l.role}" for l in logins]
        lines += ["", f"  Database: {settings.DATABASES['default']['NAME']}",
                  f"  Celery broker: {settings.CELERY_BROKER_URL} (workers {'running' if len(children) > 1 else 'off'})",
                  "  Stop with Ctrl+C.", "=" * 64, ""]
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", options["addr"], "--noreload"],
                                  env=server_env(options["addr"]))
        children.append(server)
        host, _, port = options["addr"].rpartition(":")
        wait_for_port(int(port), seconds=30, host=host or "127.0.0.1")
        self.stdout.write("\n".join(lines))  # after the workers' and server's start-up chatter
        # SIGTERM (e.g. from a process manager) shuts down like Ctrl+C: no orphaned workers.
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
