"""argparse types of the ``fastdrop`` commands and the ``examples/`` scripts.

Every argument, output paths included, is checked while the command line is parsed, so
a bad one ends in argparse's usage error (``error: argument --threads: ...``, exit
status 2) before any timing or training starts, instead of a traceback, or a lost
result, after it.  The types raise ``argparse.ArgumentTypeError``, whose message
argparse prints after the argument's name; the message repeats the value.

Writability is tested by writing, not read off permission bits: ``os.access`` says yes
to root everywhere, and /proc refuses new files even to root.
"""
import argparse
import math
import os
import tempfile

from ._backend import MAX_THREADS
from ._validation import bounds_text

MAX_SEED = 2**64 - 1        # fastdrop's seeds are 64-bit


def _interval(low, high, open_low=False, open_high=False):
    """The range as _validation words it (' in [low, high]', ' >= low', ...), each bound made
    open when said."""
    text = bounds_text(low, high)
    text = f" {text}" if text else ""
    if open_low:
        text = text.replace("[", "(").replace(">=", ">")
    if open_high:
        text = text.replace("]", ")").replace("<=", "<")
    return text


def integer(low=None, high=None, what=None):
    """An argparse type: an int in [low, high] (either bound may be None); ``what`` words
    the range in the message when the bounds' digits would not."""
    what = what or f"an integer{_interval(low, high)}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


def real(low=None, high=None, *, open_low=False, open_high=False):
    """An argparse type: a finite float between low and high, each bound closed unless said open."""
    what = f"a finite number{_interval(low, high, open_low, open_high)}"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if (not math.isfinite(value) or (low is not None and (value <= low if open_low else value < low))
                or (high is not None and (value >= high if open_high else value > high))):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


threads = integer(1, MAX_THREADS)   # what fastdrop.set_num_threads accepts
seed = integer(0, MAX_SEED, what="an integer in [0, 2**64)")
positive = integer(1)
rate = real(0, 1)                   # a drop rate, as fastdrop's layers take it


def output_file(text):
    """An argparse type: a path a file can be written at.

    Not a directory; its directory exists; an existing file opens for appending (nothing
    is written to it) and a new one can be created (it is removed again)."""
    if not text:
        raise argparse.ArgumentTypeError("must be a file path, got ''")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, a file path is expected")
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(directory):
        problem = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {directory!r} {problem}")
    existed = os.path.exists(text)
    # O_NONBLOCK: opening a FIFO nobody reads fails at once instead of hanging the parser.
    flags = os.O_WRONLY | (os.O_APPEND | os.O_NONBLOCK if existed else os.O_CREAT | os.O_EXCL)
    try:
        os.close(os.open(text, flags))
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {error.strerror}") from None
    if not existed:
        os.remove(text)
    return text


def output_dir(text):
    """An argparse type: a directory that exists or can be created, and takes a new file.

    The directories the check creates are removed again, so a command that stops later
    (another bad argument, a missing extra) leaves nothing behind; it creates them for
    real when it writes."""
    if not text:
        raise argparse.ArgumentTypeError("must be a directory path, got ''")
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    created = []                    # deepest first, the order to remove them in
    head = os.path.abspath(text)
    while not os.path.lexists(head):
        created.append(head)
        head = os.path.dirname(head)
    try:
        os.makedirs(text, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=text, prefix=".fastdrop-write-check-")
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot create or write in the directory {text!r}: "
                                         f"{error.strerror}") from None
    finally:
        for path in created:
            try:
                os.rmdir(path)      # rmdir, never a tree: only the empty directories made here go
            except OSError:
                pass
    return text
