"""Independent training runs in worker processes, their progress drawn by the parent.

Each run's result depends only on its job (seeds, model, data), and every worker runs
BLAS and fastdrop on one thread, so the results are the same for any number of workers.
"""
import concurrent.futures
import multiprocessing
import queue

from .._progress import ProgressBar, ProgressBoard
from .train import single_threaded_blas

_shared = None          # what every job of this worker reads (the data), set once per worker
_messages = None        # the parent's progress queue


def _init_worker(shared, messages):
    global _shared, _messages
    import fastdrop

    _shared, _messages = shared, messages
    # threadpoolctl applies the limit when the object is made; it holds for the worker's life.
    single_threaded_blas()
    fastdrop.set_num_threads(1)


class _QueueBar:
    """A progress bar in a worker: it sends its updates to the parent's board."""

    def __init__(self, key):
        self.key = key

    def update(self, done, note=""):
        _messages.put((self.key, done, note))

    def close(self):
        _messages.put((self.key, None, None))


def _work(function, key, job, progress):
    return function(job, _shared, _QueueBar(key) if progress else None)


def run_jobs(function, jobs, shared, *, workers, labels, totals, progress=True):
    """``[function(job, shared, bar) for job in jobs]``, in ``workers`` processes (1: in this one).

    ``function`` (a module-level function, so that it pickles) calls ``bar.update(done,
    note)`` and ``bar.close()``; ``bar`` is None when ``progress`` is off. ``labels[i]`` and
    ``totals[i]`` describe job i's bar.
    """
    if workers == 1:
        return [function(job, shared, ProgressBar(totals[key], labels[key]) if progress else None)
                for key, job in enumerate(jobs)]
    # spawn, not fork: a fresh interpreter per worker inherits no BLAS or OpenMP threads.
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    board = ProgressBoard() if progress else None
    open_bars = set(range(len(jobs))) if progress else set()

    def show(message):
        key, done, note = message
        if key not in board.bars:
            board.start(key, totals[key], labels[key])
        if done is None:
            board.close(key)
            open_bars.discard(key)
        else:
            board.update(key, done, note)

    with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context,
                                                initializer=_init_worker, initargs=(shared, messages)) as pool:
        futures = [pool.submit(_work, function, key, job, progress) for key, job in enumerate(jobs)]
        pending = set(futures)
        while pending:
            finished, pending = concurrent.futures.wait(pending, timeout=0.1,
                                                        return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                future.result()             # a failed run stops the experiment here, with its traceback
            while progress:
                try:
                    show(messages.get_nowait())
                except queue.Empty:
                    break
    while open_bars:                        # the last messages may still be in the queue's pipe
        show(messages.get(timeout=10))
    return [future.result() for future in futures]
