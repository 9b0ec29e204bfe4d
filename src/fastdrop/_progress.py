"""Progress on stderr for the ``fastdrop`` commands (bench, demo) and the examples.

One implementation: on a terminal a bar redraws in place; anywhere else (a pipe, a log
file, a test's stream) it writes plain lines only, one when a run ends, with no carriage
returns.  The core never imports this module.
"""
import sys
import time


class ProgressBar:
    """A one-line progress bar on stderr, so stdout carries only the results.

    On a terminal it redraws in place; elsewhere (logs, pipes, tests) it writes one line
    when the run finishes, so the log is not filled with carriage returns.
    """

    def __init__(self, total, label, stream=None, width=24):
        self.total, self.label, self.width = total, label, width
        self.stream = sys.stderr if stream is None else stream
        self.live = self.stream.isatty()
        self.start = time.perf_counter()
        self.done, self.note = 0, ""

    def line(self):
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        return f"{self.label} [{bar}] {self.done}/{self.total} {self.note} ({elapsed:.1f} s)"

    def update(self, done, note=""):
        self.done, self.note = done, note
        if self.live:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self):
        self.stream.write(("\r" if self.live else "") + self.line() + "\n")
        self.stream.flush()


class ProgressBoard:
    """Progress bars of runs that go on at the same time (in worker processes), on stderr.

    On a terminal the bars of the running runs share one line, redrawn in place, and each
    run leaves its final line when it ends; elsewhere only the final lines are written,
    one per run, as ProgressBar does.
    """

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.live = self.stream.isatty()
        self.bars = {}

    def start(self, key, total, label):
        bar = ProgressBar(total, label, stream=self.stream)
        bar.live = False                # the board draws the running bars itself
        self.bars[key] = bar

    def update(self, key, done, note=""):
        self.bars[key].update(done, note)
        self._draw()

    def close(self, key):
        if self.live:
            self.stream.write("\r\x1b[K")     # clear the shared line before the final one
        self.bars.pop(key).close()
        self._draw()

    def _draw(self):
        if self.live and self.bars:
            self.stream.write("\r\x1b[K" + " | ".join(bar.line() for bar in self.bars.values()))
            self.stream.flush()
