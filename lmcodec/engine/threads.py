"""The threads lmcodec computes with: its kernel pool, and torch's OpenMP threads inside lmcodec's own calls.

Why it is done this way: OpenMP worker threads (torch._int_mm -> oneDNN -> libgomp) spin while they wait at a
barrier. When another process keeps the cores busy, a spinning thread holds a core while the thread it waits for
sits in the run queue, so each of a decoding step's ~120 small matmuls waits out a scheduler time slice: decoding
collapsed (2 cores, 2 KB: 12.6 s quiet, 207 s beside one `yes`). Threads that block instead of spinning give
their core back, so the scheduler can run the one that is late.

- lmcodec never changes torch's process-wide thread count. OpenMP keeps its thread count per calling thread, so
  `scope()` sets it for the calling thread only, for the duration of one engine call, and restores it; the
  threads of a program that imports lmcodec keep their own settings. (Where the OpenMP runtime cannot be found,
  scope() falls back to torch.set_num_threads for the duration, which every thread sees.)
- Coarse work (the full pass: blocks of 256 positions) runs as independent tasks on lmcodec's own pool, whose
  threads block; torch inside those tasks runs on one thread.
- Fine work (a decoding step) is fastest on a quiet machine with threads that wait for each other by spinning,
  and ruinous on a busy one, so a Pacer times the steps and chooses between every thread and one (for OpenMP
  and for lmcodec's own kernels alike), trying the other choice again at growing intervals. The choice changes
  only speed: every kernel computes the same integers with any number of threads.
- A step on several threads runs each layer's parts side by side (side_by_side: the calling thread and partner
  threads of its own, which the pool could not promise to have free), meeting inside compiled code
  (barrier.py), where handing each of a step's ~270 kernel calls to the pool cost more than it saved.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from statistics import median

from . import lazytorch


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def resolve(threads: int | None) -> int:
    """A thread count as the options give it: None or 0 means every available CPU (zstd's and xz's -T0)."""
    if threads is None or threads == 0:
        return available_cpus()
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    return threads


def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime torch has loaded (libgomp, libiomp5 or libomp), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/lib" in line}
    except OSError:  # pragma: no cover - not on Linux
        return None
    for path in sorted(paths):
        if os.path.basename(path).startswith(("libgomp", "libiomp", "libomp")):
            try:
                lib = ctypes.CDLL(path)
                lib.omp_get_max_threads.restype = ctypes.c_int
                lib.omp_set_num_threads.argtypes = [ctypes.c_int]
                return lib
            except (OSError, AttributeError):
                continue
    return None


_omp: list = []  # the OpenMP runtime, looked for once torch is loaded (it loads the runtime): [] not yet
_local = threading.local()  # width: the kernel pool's threads for this thread's work; active: inside a pool task;
# pooled: a pool thread; openmp_one: its OpenMP count set to one


def _set_openmp(n: int | None) -> int | None:
    """Set the calling thread's OpenMP thread count; returns the previous one. Without torch in the process there
    is no OpenMP pool to size: None, and setting None does nothing."""
    torch = lazytorch.loaded()
    if torch is None or n is None:
        return None
    if not _omp:
        _omp.append(_openmp_runtime())
    # torch initializes a thread's OpenMP count lazily, on its first parallel region; asking for the count runs
    # that initialization now, so that it cannot later overwrite the count set here.
    old = torch.get_num_threads()
    if _omp[0] is not None:
        _omp[0].omp_set_num_threads(n)
    elif n != old:  # pragma: no cover - no OpenMP runtime found: torch's process-wide setting
        torch.set_num_threads(n)
    return old


@contextmanager
def scope(width: int, openmp: int) -> Iterator[None]:
    """For the duration, the calling thread's lmcodec kernels split work over `width` threads, and its torch ops
    use `openmp` OpenMP threads. Both are restored afterwards."""
    old_width = getattr(_local, "width", 1)
    old_omp = _set_openmp(openmp)
    _local.width = width
    _ensure_pool(width)
    try:
        yield
    finally:
        _local.width = old_width
        _set_openmp(old_omp)


def scoped(gen: Iterator, width: int, openmp: int) -> Iterator:
    """Run each resumption of a generator inside scope(width, openmp); the consumer's code between the items
    runs outside it."""
    while True:
        with scope(width, openmp):
            try:
                item = next(gen)
            except StopIteration:
                return
        yield item


@contextmanager
def released() -> Iterator[None]:
    """Inside a task on the kernel threads (a group of frames decoding), for the duration: its work may split over
    scope()'s width again, as outside any task. For a task that runs alone while the other threads are idle."""
    was_active = getattr(_local, "active", False)
    _local.active = False
    try:
        yield
    finally:
        _local.active = was_active


def width() -> int:
    """Threads the calling thread's kernels may split work over (1 inside a pool task: no nested splits)."""
    return 1 if getattr(_local, "active", False) else getattr(_local, "width", 1)


_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _pool_thread_start() -> None:
    _local.active = _local.pooled = True
    _one_openmp()


def _one_openmp() -> None:
    """torch inside a pool task runs on that task's thread alone: set on a pool thread once torch is loaded
    (a process may load it after the pool started)."""
    if not getattr(_local, "openmp_one", False) and _set_openmp(1) is not None:
        _local.openmp_one = True


def _ensure_pool(n: int) -> None:
    """A pool with at least n - 1 threads (the caller's thread is the n-th)."""
    global _pool, _pool_size
    if n - 1 <= _pool_size:
        return
    with _pool_lock:
        if n - 1 > _pool_size:
            old = _pool
            _pool = ThreadPoolExecutor(n - 1, thread_name_prefix="lmcodec", initializer=_pool_thread_start)
            _pool_size = n - 1
            if old is not None:
                old.shutdown(wait=False)


def parallel(tasks: list[Callable[[], None]]) -> None:
    """Run independent tasks on up to width() threads (the caller's and the pool's). Each thread takes the next
    task when it is done with one, so a thread that the scheduler holds back leaves its share to the others.
    Once a task raises (an interrupt, an error), no thread takes another, and the first error is raised."""
    n = min(width(), len(tasks))
    if n <= 1:
        for task in tasks:
            task()
        return
    todo = iter(tasks)
    lock = threading.Lock()
    failed = threading.Event()

    def drain() -> None:
        if getattr(_local, "pooled", False):
            _one_openmp()
        while True:
            with lock:
                task = None if failed.is_set() else next(todo, None)
            if task is None:
                return
            try:
                task()
            except BaseException:
                failed.set()
                raise

    futures = [_pool.submit(drain) for _ in range(n - 1)]
    was_active = getattr(_local, "active", False)
    _local.active = True
    try:
        drain()
    finally:
        _local.active = was_active
        for fut in futures:  # one that has not started has no task left to take: called off, not waited for (a
            # pool thread that splits its own work, released(), would otherwise wait on itself)
            if not fut.cancel():
                fut.result()


class _Partner:
    """A thread of its own that runs the jobs side_by_side gives it, one at a time."""

    def __init__(self, name: str) -> None:
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.job: Callable[[], None] = lambda: None
        self.error: BaseException | None = None
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            self.go.acquire()
            try:
                self.job()
            except BaseException as exc:  # handed to the caller of side_by_side
                self.error = exc
            self.done.release()


_partners: list[_Partner] = []
_partners_lock = threading.Lock()


def side_by_side(jobs: list[Callable[[], None]], fail: Callable[[], None]) -> bool:
    """Run the jobs at the same time, the first on the calling thread and each other on a partner thread of its
    own, and wait for all; the jobs may wait for each other (barrier.meet), which the kernel pool could not
    promise (its threads may be busy with other tasks). Where a job raises, fail() is called so that the others
    stop waiting for it, and its exception is raised here once all are done. False, running nothing, where the
    partners are running another caller's jobs."""
    if not _partners_lock.acquire(blocking=False):
        return False
    try:
        while len(_partners) < len(jobs) - 1:
            _partners.append(_Partner(f"lmcodec-partner-{len(_partners)}"))
        helpers = _partners[: len(jobs) - 1]

        def guarded(job: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    job()
                except BaseException:
                    fail()
                    raise
            return run

        for helper, job in zip(helpers, jobs[1:]):
            helper.job, helper.error = guarded(job), None
            helper.go.release()
        raised: BaseException | None = None
        try:
            guarded(jobs[0])()
        except BaseException as exc:
            raised = exc
        for helper in helpers:
            while True:
                try:
                    helper.done.acquire()
                    break
                except BaseException as exc:  # an interrupt while waiting: stop the others, still wait for them
                    fail()
                    raised = raised or exc
            raised = raised or helper.error
        if raised is not None:
            raise raised
        return True
    finally:
        _partners_lock.release()


def split(m: int, fn: Callable[[int, int], None], parts: int | None = None) -> None:
    """fn(a, b) over row ranges that cover 0..m, as up to `parts` (default width()) parallel tasks."""
    parts = min(width() if parts is None else parts, m)
    if parts <= 1:
        fn(0, m)
        return
    cuts = [m * p // parts for p in range(parts + 1)]
    parallel([lambda a=cuts[p], b=cuts[p + 1]: fn(a, b) for p in range(parts)])


class Pacer:
    """Chooses the width of each decoding step: every thread (wide) or one (narrow), by measured time.

    It starts narrow (one thread cannot collapse) and keeps a current choice; when `countdown` steps have run
    with it, it runs one trial step with the other. If the trial took less than SWITCH_MARGIN of the median of
    the last RECENT steps, the other choice becomes current and the interval starts again from FIRST_INTERVAL;
    otherwise the interval grows (at least doubling, and long enough that a trial that cost r times a step
    costs at most TRIAL_SHARE of the steps between trials), up to LONGEST_INTERVAL. Neighbouring steps do
    about the same work, so their times compare. A quiet machine turns wide after RECENT steps and pays for a
    narrow trial now and then; a busy one stays narrow and pays for its wide trials rarely.
    """

    FIRST_INTERVAL = 8
    LONGEST_INTERVAL = 512
    RECENT = 3
    SWITCH_MARGIN = 0.9
    TRIAL_SHARE = 0.05

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.current = 1
        self.recent: deque[float] = deque(maxlen=self.RECENT)
        self.interval = self.FIRST_INTERVAL
        self.countdown = self.RECENT
        self._trial = False

    def _other(self) -> int:
        return 1 if self.current > 1 else self.threads

    def choose(self) -> int:
        """The width (OpenMP and kernel threads) for the next step."""
        self._trial = self.threads > 1 and self.countdown <= 0 and len(self.recent) == self.RECENT
        return self._other() if self._trial else self.current

    def record(self, seconds: float) -> None:
        """The time the step just run took."""
        if not self._trial:
            self.recent.append(seconds)
            self.countdown -= 1
            return
        usual = median(self.recent)
        if seconds < self.SWITCH_MARGIN * usual:
            self.current = self._other()
            self.recent.clear()
            self.interval = self.FIRST_INTERVAL
        else:
            cost = (seconds - usual) / max(usual, 1e-9)  # the trial's extra time, in steps
            self.interval = min(max(2 * self.interval, int(cost / self.TRIAL_SHARE)), self.LONGEST_INTERVAL)
        self.countdown = self.interval
        self._trial = False

    @contextmanager
    def step(self) -> Iterator[None]:
        """One timed step inside scope(the chosen width, for lmcodec's kernels and OpenMP alike): wide, engine 2
        runs each layer's parts side by side (layerstep.layer_part), whose threads wait for each other, which
        pays on a quiet machine and not beside busy processes."""
        if getattr(_local, "active", False):  # a pool task (a group of frames, unless released()): one thread
            with scope(1, 1):
                yield
            return
        t = time.perf_counter()
        n = self.choose()
        with scope(n, n):
            yield
        self.record(time.perf_counter() - t)
