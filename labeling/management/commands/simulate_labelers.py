"""`manage.py simulate_labelers --project SLUG --labeler sentiment:5 --labeler copy:1 [--rate 5/s] [--count N]
[--temperature KIND=T] [--seed S] [--wait] [--realtime]`.

Simulated labelers (see labeling/scorers.py for the kinds and the temperature) label the
project's comparisons through the same services as people. Ctrl+C stops after the label in
hand and prints a summary; a second Ctrl+C stops at once (the label in hand is rolled back).
"""
from __future__ import annotations

import signal
import time

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import LabelingError
from labeling.models import Project
from labeling.services.simulation import (
    LabelerSpec,
    SimulationCounts,
    labeler_spec_parse,
    rate_parse,
    simulate_labeling,
    simulated_labelers_ensure,
    temperature_parse,
)
from labeling.scorers import KINDS

PROGRESS_EVERY = 10


class Command(BaseCommand):
    help = "Label a project's comparisons with simulated labelers (kinds: " + ", ".join(KINDS) + ")."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--labeler", action="append", required=True, metavar="KIND[:COUNT]",
                            help="e.g. sentiment:5 for five sentiment accounts; repeat for several kinds.")
        parser.add_argument("--temperature", action="append", default=[], metavar="KIND=T",
                            help="Softmax temperature of a kind's accounts (0 = always its best-scored sample).")
        parser.add_argument("--rate", default=None, metavar="N/s", help="At most N labels a second (also N/min, N/h).")
        parser.add_argument("--count", type=int, default=None, metavar="N", help="Stop after N labels (default: all).")
        parser.add_argument("--seed", type=int, default=None, help="Base seed of the accounts' draws (default 0).")
        parser.add_argument("--wait", action="store_true",
                            help="When nothing is left, wait for new comparisons instead of stopping.")
        parser.add_argument("--realtime", action="store_true",
                            help="Each account holds its lease for its simulated reading time before answering "
                                 "(rehearsals, load tests); without it answers come at once.")

    def handle(self, *args, **options):
        # 1. Parse everything before writing anything.
        try:
            specs = [labeler_spec_parse(value) for value in options["labeler"]]
            temperatures = dict(temperature_parse(value) for value in options["temperature"])
            rate = rate_parse(options["rate"]) if options["rate"] is not None else None
        except LabelingError as error:
            raise CommandError(error.message) from error
        unused = set(temperatures) - {spec.kind for spec in specs}
        if unused:
            raise CommandError(f"--temperature given for {', '.join(sorted(unused))}, which no --labeler asks for.")
        if options["count"] is not None and options["count"] < 1:
            raise CommandError("--count must be at least 1.")
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        specs = [LabelerSpec(kind=s.kind, count=s.count, temperature=temperatures.get(s.kind)) for s in specs]

        # 2. Accounts.
        try:
            labelers = simulated_labelers_ensure(project=project, specs=specs, seed=options["seed"])
        except LabelingError as error:
            raise CommandError(error.message) from error
        for labeler in labelers:
            self.stdout.write(f"  {labeler.user.username}: {labeler.kind}, temperature {labeler.temperature:g}, "
                              f"seed {labeler.seed}")

        # 3. Label until done, the count is reached, or Ctrl+C.
        self._stop = False
        previous = signal.signal(signal.SIGINT, self._interrupt)
        counts = SimulationCounts()
        started = time.monotonic()
        try:
            simulate_labeling(project=project, labelers=labelers, n=options["count"], rate=rate,
                              stop_when_empty=not options["wait"], realtime=options["realtime"], sleep=self._sleep,
                              should_stop=lambda: self._stop, on_label=self.progress, counts=counts)
        except KeyboardInterrupt:
            # The second Ctrl+C: the label in hand was rolled back; its lease comes back next run.
            counts.stopped = True
        finally:
            signal.signal(signal.SIGINT, previous)
        self.summary(counts, time.monotonic() - started)

    def _interrupt(self, signum, frame) -> None:
        if self._stop:
            raise KeyboardInterrupt
        self._stop = True
        self.stderr.write("Stopping after the label in hand (Ctrl+C again to stop at once)…")

    def _sleep(self, seconds: float) -> None:
        # Short naps, so Ctrl+C is noticed soon even at a slow rate.
        end = time.monotonic() + seconds
        while not self._stop and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))

    def progress(self, counts: SimulationCounts, labeler) -> None:
        if counts.labeled % PROGRESS_EVERY == 0:
            self.stdout.write(f"{counts.labeled} labels…")

    def summary(self, counts: SimulationCounts, seconds: float) -> None:
        why = "stopped by Ctrl+C" if counts.stopped else "done"
        self.stdout.write(self.style.SUCCESS(
            f"{why}: {counts.labeled} labels in {seconds:.1f} s"
            + (f", {counts.conflicts} leases withdrawn or expired" if counts.conflicts else "")))
        for username, n in counts.per_labeler.items():
            note = (" (deactivated or not allowed to label: skipped)" if username in counts.refused
                    else " (nothing left to label)" if username in counts.exhausted else "")
            self.stdout.write(f"  {username}: {n}{note}")
