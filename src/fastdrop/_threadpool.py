"""fastdrop's thread pool as threadpoolctl sees it: a ``threadpoolctl.LibController``.

Imported only once threadpoolctl itself is (``_backend.register_with_threadpoolctl``), so
``import fastdrop`` never imports threadpoolctl.  threadpoolctl finds controllers by the
shared libraries loaded in the process: this one matches the compiled module
``fastdrop._kernels`` (its file name starts with ``_kernels`` and it exports the variant
tables ``fd_kernels_<variant>``, which no other library has).

``user_api`` is "openmp": the kernels' threads are an OpenMP team, so
``threadpool_limits(1, user_api="openmp")``, which joblib and scikit-learn use against
oversubscription, limits fastdrop as it limits the other OpenMP libraries; ``internal_api``
"fastdrop" selects it alone.  The controller reads and sets the process-wide count
(``set_num_threads``): a ``use_num_threads`` block still overrides it in its context.
"""
import threadpoolctl

from . import __version__, _backend


class FastdropController(threadpoolctl.LibController):
    user_api = "openmp"
    internal_api = "fastdrop"
    filename_prefixes = ("_kernels",)
    check_symbols = ("fd_kernels_baseline",)

    def get_num_threads(self):
        return _backend.process_num_threads()

    def set_num_threads(self, num_threads):
        # a limit: at most MAX_THREADS satisfies any larger one
        _backend.set_num_threads(min(num_threads, _backend.MAX_THREADS))

    def get_version(self):
        return __version__

    def set_additional_attributes(self):
        self.isa = _backend.isa()


threadpoolctl.register(FastdropController)
