# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Plans made in a child process at a lower CPU priority, beside frames that meet their deadline.

A plan is pure Python: a deadline search on the demo model takes 200-300 ms when its
arrangements are not cached yet. Made on a thread beside inference it holds the GIL and, on a
machine whose cores inference keeps busy, it takes their time: on 2 cores the frame beside it
ran 189-267 ms slower (``docs/planning_beside_inference.json``), and so did the frames beside a
child process at the node's own priority. At nice 10 the child yields the cores to inference
and holds no lock inference needs: beside a preloaded model, which keeps both cores busy, the
frames beside the same plans ran -2 to +11 ms slower on average (-17 to +108 ms in all over
the ten frames a plan overlapped, against +210 to +267 ms on one frame from a thread), and a
plan took about 1 s instead of 0.3. SCHED_IDLE was tried: it waited 4 s for a plan in
``make demo``, where the bag player and the demo's client also want the cores.

The child imports the planner alone (no torch), and serves one request at a time: a function
of ``planner`` by name and its arguments, answered with its result or its error. Requests and
answers cross the child's stdin and stdout as pickles: the child is this interpreter's own and
nothing else writes to its pipes. It ends when its stdin closes (``close``, or this process
ending).
"""

from __future__ import annotations

import os
from pathlib import Path
import pickle
import signal
import subprocess
import sys
import threading
from typing import Any, BinaryIO

from . import planner

SERVED = frozenset({'plan_for_deadline', 'plan_for_budget', 'joint_plan'})
STOP_S = 5.0    # a child that does not end this long after its stdin closed is killed
NICE = 10       # the child's nice level (see the module's docstring)


class PlanWorkerError(RuntimeError):
    """The planning process could not be started, or ended without an answer."""


class PlanWorker:
    """A planning child process, started on first use and again after it failed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``planner.<name>(*args, **kwargs)``, computed in the child; its errors re-raised."""
        with self._lock:
            child = self._started()
            assert child.stdin is not None and child.stdout is not None
            try:
                pickle.dump((name, args, kwargs), child.stdin)
                child.stdin.flush()
                ok, value = pickle.load(child.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as err:
                self._stop(child)
                raise PlanWorkerError(f'the planning process ended without an answer '
                                      f'(exit code {child.returncode}): {err}') from err
        if not ok:
            raise value
        return value

    def plan_for_deadline(self, *args: Any, **kwargs: Any) -> Any:
        """See :func:`planner.plan_for_deadline`."""
        return self.call('plan_for_deadline', *args, **kwargs)

    def joint_plan(self, *args: Any, **kwargs: Any) -> Any:
        """See :func:`planner.joint_plan`."""
        return self.call('joint_plan', *args, **kwargs)

    @property
    def pid(self) -> int | None:
        """The child's process id (None before the first plan and after ``close``)."""
        child = self._child
        return None if child is None else child.pid

    def close(self) -> None:
        """End the child, after a plan under way (its caller holds the pipes until it returns).

        A child that has not ended STOP_S after its input closed is killed.
        """
        with self._lock:
            if self._child is not None:
                self._stop(self._child)

    def _started(self) -> subprocess.Popen[bytes]:
        child = self._child
        if child is not None and child.poll() is None:
            return child
        root = str(Path(__file__).resolve().parents[2])   # where this package is imported from
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(p for p in (root, env.get('PYTHONPATH')) if p)
        try:
            child = subprocess.Popen([sys.executable, '-m', __name__], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        except OSError as err:
            raise PlanWorkerError(f'cannot start the planning process: {err}') from err
        lower_priority(child.pid)   # from its start: the interpreter's start-up is work too
        self._child = child
        return child

    def _stop(self, child: subprocess.Popen[bytes]) -> None:
        self._child = None
        for pipe in (child.stdin, child.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        try:
            child.wait(STOP_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def lower_priority(pid: int, nice: int = NICE) -> None:
    """Give process ``pid`` the nice level ``nice`` (where the OS allows it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except (AttributeError, OSError):   # not POSIX, or refused: it plans at its parent's
        pass


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer requests until ``requests`` ends."""
    while True:
        try:
            name, args, kwargs = pickle.load(requests)
        except EOFError:
            return
        try:
            if name not in SERVED:
                raise ValueError(f'{name!r} is not served by the planning process')
            reply: tuple[bool, Any] = (True, getattr(planner, name)(*args, **kwargs))
        except Exception as err:  # noqa: BLE001 - the caller gets it, the child serves on
            reply = (False, err)
        try:
            data = pickle.dumps(reply)
        except Exception as err:  # noqa: BLE001 - an answer that does not pickle
            data = pickle.dumps((False, PlanWorkerError(f'{name}: {err!r}')))
        answers.write(data)
        answers.flush()


def main() -> None:
    """The child: serve stdin; nothing else may write to stdout.

    Ctrl-C reaches the whole process group: the child leaves it to its parent, and ends with it
    (its stdin closes).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, answers)


if __name__ == '__main__':
    main()
