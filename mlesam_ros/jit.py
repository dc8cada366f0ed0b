"""numba for the frame path's hand-written loops: one compile setting, one warm-up for all.

A loop is compiled only where no library does the job (each kernel's docstring says why) and
lives beside the numpy code it accelerates, which stays as its reference (tests compare the
two; the contract is measured agreement). numba is optional: without it every :func:`kernel`
returns ``None`` and the caller runs its numpy path. Compiled code is cached on disk, so only
the first start of a machine compiles; :func:`warm_up` does that at configure time, for every
argument type real messages give, instead of on the first frame.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_WARM_UPS: list[tuple[Callable[[], Any], Callable[[Any], None]]] = []


@functools.cache
def numba_jit() -> Any:
    """``numba.njit`` with numpy's float semantics (x / 0 is inf, no check), or ``None``."""
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True, nogil=True, error_model="numpy")


def kernel(build: Callable[[Any], Any]) -> Callable[[], Any]:
    """Decorate ``build(njit)``, which defines and returns compiled loops: built on first use.

    The decorated function returns what ``build`` returned, or ``None`` without numba.
    """

    @functools.cache
    def compiled() -> Any:
        njit = numba_jit()
        return None if njit is None else build(njit)

    return functools.wraps(build)(compiled)


def inline(*helpers: Callable[..., Any]) -> None:
    """Let kernels call these module-level functions, compiled into each caller.

    A jitted function captured in a kernel's closure would make numba's on-disk cache miss on
    every start (the closure is keyed by the dispatcher's per-process identity); a helper
    registered with ``register_jitable`` is compiled into its caller and caches.
    """
    from numba.extending import register_jitable

    for helper in helpers:
        _register_once(helper, register_jitable)


@functools.cache
def _register_once(helper: Callable[..., Any], register: Callable[..., Any]) -> None:
    register(helper)


def warm_up_with(
    kernels: Callable[[], Any],
) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Register a warm-up of ``kernels()``: it calls them once per argument type real data has.

    The warm-up is skipped while ``kernels()`` is ``None`` (no numba, or a test standing in
    the numpy path: pass ``lambda: getter()`` so the module's current getter is called).
    """

    def register(function: Callable[[Any], None]) -> Callable[[Any], None]:
        _WARM_UPS.append((kernels, function))
        return function

    return register


def warm_up() -> None:
    """Compile (or load from the cache) every registered kernel now, not on the first frame."""
    for kernels, function in _WARM_UPS:
        built = kernels()
        if built is not None:
            function(built)
