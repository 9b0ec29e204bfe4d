import os

import pytest

import fastdrop
from fastdrop import _backend

BACKENDS = ["cython", "numpy"] if _backend.compiled_available() else ["numpy"]


def pytest_configure(config):
    if os.environ.get("FASTDROP_REQUIRE_COMPILED") == "1" and not _backend.compiled_available():
        raise pytest.UsageError(f"FASTDROP_REQUIRE_COMPILED=1 but the compiled backend did not load: "
                                f"{_backend._compiled_error}")


def pytest_report_header(config):
    return (f"fastdrop {fastdrop.__version__} ({os.path.dirname(fastdrop.__file__)}): backend {fastdrop.backend()}, "
            f"isa {fastdrop.info()['isa']}")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test once per available backend.

    Set process-wide, not with the context-local ``use_backend``: the threads a test starts
    (dask's threaded scheduler, thread pools) must run on the backend under test too."""
    previous = fastdrop.backend()
    fastdrop.set_backend(request.param)
    try:
        yield request.param
    finally:
        fastdrop.set_backend(previous)
