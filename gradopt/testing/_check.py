"""``check_transform``: the conformance battery, run on any gradient transformation.

Each check raises an ``AssertionError`` that names the check, says what broke
(the leaf path, the two structures, shapes or dtypes) and how to fix it. chex
and optax are imported here, on first use, never by ``import gradopt``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradopt.core._chain import chain, identity

_INSTALL = (
    "gradopt.testing needs chex and optax, which gradopt itself does not depend on. "
    "Install them with `pip install chex optax` (or `pip install 'gradopt[test]'`)."
)


def _require(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise ImportError(f"{name} is not installed. {_INSTALL}") from e


class CheckResult(NamedTuple):
    """What :func:`check_transform` ran, for further checks of your own.

    Attributes:
      grads: the gradient trees fed to the float32 run, one per step.
      updates: the updates of the op-by-op run, one tree per step.
      state: the state after the last step of that run.
      bfloat16_updates: the updates of the run on bfloat16 params and gradients
        (``None`` if that check was switched off or params have no float leaf).
      bfloat16_state: the state after that run (or ``None``).
    """

    grads: list
    updates: list
    state: Any
    bfloat16_updates: list | None
    bfloat16_state: Any


class _Failure(AssertionError):
    pass


def _fail(check: str, what: str, fix: str) -> None:
    raise _Failure(f"check_transform [{check}]: {what}\nHow to fix: {fix}")


# ----------------------------------------------------------------------------
# tree signatures


def _leaf_signature(x) -> tuple:
    return (
        tuple(jnp.shape(x)),
        jnp.dtype(jnp.result_type(x)),
        bool(getattr(x, "weak_type", False)),
    )


def _paths(tree) -> list[tuple[str, Any]]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(p) or "(root)", x) for p, x in flat]


def _difference(old, new, *, weak: bool = True) -> str | None:
    """Where two trees differ in structure, shape, dtype (and weak type), or None."""
    s_old, s_new = jax.tree.structure(old), jax.tree.structure(new)
    if s_old != s_new:  # type: ignore[operator]
        return f"the tree structure changed\n  before: {s_old}\n  after:  {s_new}"
    for (path, a), b in zip(_paths(old), jax.tree.leaves(new), strict=True):
        (sa, da, wa), (sb, db, wb) = _leaf_signature(a), _leaf_signature(b)
        if sa != sb:
            return f"the leaf at {path} changed shape {sa} -> {sb}"
        if da != db:
            return f"the leaf at {path} changed dtype {da} -> {db}"
        if weak and wa != wb:
            return (
                f"the leaf at {path} changed from a {'weakly' if wa else 'strongly'} typed "
                f"{da} to a {'weakly' if wb else 'strongly'} typed one"
            )
    return None


def _python_scalar_leaves(state) -> list[str]:
    return [
        f"{path} = {x!r} ({type(x).__name__})"
        for path, x in _paths(state)
        if not isinstance(x, (jax.Array, np.ndarray, np.generic))
    ]


# ----------------------------------------------------------------------------
# inputs


def _default_grads(params, steps: int, seed: int) -> list:
    """``steps`` gradient trees shaped like ``params``, rounded to bfloat16 values
    so that the float32 and bfloat16 runs see the same numbers (complex leaves:
    real and imaginary parts drawn independently)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):

        def draw(shape):
            x = jnp.asarray(rng.normal(size=shape).astype(np.float32), jnp.bfloat16)
            return x.astype(jnp.float32)

        def one(p):
            shape, dtype = jnp.shape(p), jnp.result_type(p)
            if not jnp.issubdtype(dtype, jnp.inexact):
                return jnp.zeros(shape, dtype)
            if jnp.issubdtype(dtype, jnp.complexfloating):
                return jax.lax.complex(draw(shape), draw(shape)).astype(dtype)
            return draw(shape).astype(dtype)

        out.append(jax.tree.map(one, params))
    return out


def _to_bfloat16(tree):
    def cast(x):
        if jnp.issubdtype(jnp.result_type(x), jnp.floating):
            return jnp.asarray(x).astype(jnp.bfloat16)
        return x

    return jax.tree.map(cast, tree)


def _to_complex(tree, factor=None):
    """Floating leaves as complex (complex64, complex128 for float64), times ``factor``."""

    def cast(x):
        dtype = jnp.result_type(x)
        if not jnp.issubdtype(dtype, jnp.floating):
            return x
        c = jnp.complex128 if jnp.dtype(dtype).itemsize == 8 else jnp.complex64
        z = jnp.asarray(x).astype(c)
        return z if factor is None else z * jnp.asarray(factor, c)

    return jax.tree.map(cast, tree)


def _has_float_leaf(tree) -> bool:
    return any(jnp.issubdtype(jnp.result_type(x), jnp.floating) for x in jax.tree.leaves(tree))


class _Runner:
    """Calls ``tx.update`` the way the user asked (params or not, extra arguments)."""

    def __init__(self, tx, pass_params: bool, extra_args: Mapping[str, Any]):
        self.tx, self.pass_params, self.extra = tx, pass_params, dict(extra_args)

    def step(self, tx, grads, state, params):
        return tx.update(grads, state, params if self.pass_params else None, **self.extra)

    def run(self, tx, grads_list, params, step=None, check=None):
        step = step or (lambda g, s, p: self.step(tx, g, s, p))
        state = tx.init(params)
        outs = []
        for i, g in enumerate(grads_list):
            u, new = step(g, state, params)
            if check is not None:
                check(i + 1, g, u, state, new)
            outs.append(u)
            state = new
        return outs, state


def _close(check: str, got, want, rtol: float, atol: float, fix: str) -> None:
    chex = _require("chex")
    try:
        chex.assert_trees_all_close(got, want, rtol=rtol, atol=atol)
    except AssertionError as e:
        _fail(check, f"results differ (rtol={rtol}, atol={atol}):\n{e}", fix)


def _finite(check: str, tree, fix: str) -> None:
    def finite(x) -> bool:
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.complexfloating):
            return bool(np.all(np.isfinite(x)))
        if x.dtype.kind in "biu":
            return True
        return bool(np.all(np.isfinite(x.astype(np.float64))))

    bad = [path for path, x in _paths(tree) if not finite(x)]
    if bad:
        _fail(check, f"non-finite values at {bad}", fix)


# ----------------------------------------------------------------------------
# the checks


def _check_init(tx, params):
    try:
        state = tx.init(params)
    except Exception as e:  # noqa: BLE001  (re-raised with context)
        _fail("init", f"tx.init(params) raised {type(e).__name__}: {e}", "make init accept params.")
    scalars = _python_scalar_leaves(state)
    if scalars:
        _fail(
            "state leaves are arrays",
            f"the state built by init holds Python values: {scalars}",
            "store every state entry as a JAX array (a step counter as "
            "jnp.zeros([], jnp.int32), a flag as jnp.asarray(False)); a Python number becomes "
            "an array under jax.jit, so the state would change type after the first step.",
        )
    try:
        abstract = jax.eval_shape(tx.init, params)
    except Exception as e:  # noqa: BLE001
        _fail(
            "init does not depend on values",
            f"init failed under jax.eval_shape ({type(e).__name__}: {e})",
            "build the state from the parameters' shapes and dtypes only (jnp.zeros_like, "
            "jnp.zeros(p.shape, p.dtype)); do not branch in Python on their values.",
        )
    diff = _difference(abstract, state)
    if diff:
        _fail(
            "init does not depend on values",
            f"init under jax.eval_shape and init on concrete params disagree: {diff}",
            "build the state from the parameters' shapes and dtypes only.",
        )
    return state


def _step_checker(check: str, kind: str):
    def check_step(i, grads, updates, old, new):
        diff = _difference(grads, updates, weak=False)
        if diff:
            _fail(
                "updates like the gradient",
                f"step {i} ({kind}): the updates are not shaped like the gradient: {diff}",
                "return one update per gradient leaf, with the gradient's shape and dtype "
                "(cast with .astype(g.dtype) if you compute in higher precision); keep None "
                "leaves None.",
            )
        scalars = _python_scalar_leaves(new)
        if scalars:
            _fail(
                "state leaves are arrays",
                f"step {i} ({kind}) returned a state holding Python values: {scalars}",
                "keep every state entry a JAX array (jnp.asarray(x, dtype)).",
            )
        diff = _difference(old, new)
        if diff:
            _fail(
                check,
                f"step {i} ({kind}) changed the state: {diff}",
                "update must return a state with exactly the tree structure, shapes and dtypes "
                "that init built (same NamedTuple, cast new values with .astype(old.dtype)); "
                "otherwise jax.jit recompiles at every step and lax.scan refuses the loop.",
            )

    return check_step


def _check_jit(run: _Runner, tx, grads, params, eager, rtol, atol):
    traces = []

    def step(g, s, p):
        traces.append(None)
        return run.step(tx, g, s, p)

    jstep = jax.jit(step)
    jitted = run.run(tx, grads, params, jstep, _step_checker("stable under jit", "jit"))
    if len(traces) != 1:
        _fail(
            "no recompilation",
            f"the jitted update was traced {len(traces)} times in {len(grads)} steps",
            "the state (or the updates fed back) changes type between steps: make update return "
            "the exact types init builds, and keep hyperparameters out of the state's structure.",
        )
    _close(
        "jit and no-jit agree",
        jitted,
        eager,
        rtol,
        atol,
        "avoid Python side effects and Python branches on array values in update; use "
        "jnp.where / jax.lax.cond instead.",
    )
    return jstep


def _check_vmap(run: _Runner, tx, grads, params, eager, jstep, rtol, atol):
    # two examples: the given gradients, and the same gradients halved (whose
    # reference run reuses the compiled step of the jit check)
    halved = [
        jax.tree.map(lambda g: g / 2 if jnp.issubdtype(g.dtype, jnp.inexact) else g, t)
        for t in grads
    ]
    ref_half = run.run(tx, halved, params, jstep)

    def stack(a, b):
        return jax.tree.map(lambda x, y: jnp.stack([jnp.asarray(x), jnp.asarray(y)]), a, b)

    batch_params = stack(params, params)
    try:
        state = jax.vmap(tx.init)(batch_params)
        vstep = jax.jit(jax.vmap(lambda g, s, p: run.step(tx, g, s, p)))
        outs = []
        for g, h in zip(grads, halved, strict=True):
            u, state = vstep(stack(g, h), state, batch_params)
            outs.append(u)
    except Exception as e:  # noqa: BLE001
        _fail(
            "vmap over a batch of states",
            f"jax.vmap(tx.init) / jax.vmap(tx.update) raised {type(e).__name__}: {e}",
            "write init and update with jax.numpy operations on each leaf; no Python branching "
            "on array values, no `.item()` or `float()` of arrays.",
        )
    for k, ref in enumerate((eager, ref_half)):
        got = jax.tree.map(lambda x, k=k: x[k], (outs, state))
        _close(
            "vmap over a batch of states",
            got,
            ref,
            rtol,
            atol,
            "make update act on each example independently (no reductions over a leading "
            "axis that is not yours).",
        )


def _check_chains(run: _Runner, tx, grads, params, eager, rtol, atol, optax_chain: bool):
    updates, state = eager
    fix = (
        "update must use only its arguments (updates, state, params, **extra_args) and accept "
        "**extra keyword arguments it does not use."
    )
    chains = [("gradopt.chain", chain(identity(), tx, identity()))]
    if optax_chain:
        optax = _require("optax")
        chains.append(("optax.chain", optax.chain(optax.identity(), tx)))
    for name, chained in chains:
        try:
            got, got_state = run.run(chained, grads, params)
        except Exception as e:  # noqa: BLE001
            _fail(f"inside {name}", f"the transform raised {type(e).__name__}: {e}", fix)
        _close(f"inside {name}", got, updates, rtol, atol, fix)
        _close(
            f"inside {name}", jax.tree.leaves(got_state), jax.tree.leaves(state), rtol, atol, fix
        )


_PHASE = complex(np.cos(0.7), np.sin(0.7))  # the rotation of the phase-equivariance law


def _check_complex(run: _Runner, tx, params, real_grads, real_updates, rtol, atol, laws, jit):
    """The checks on complex parameters (``check_transform(..., complex_params=True)``)."""
    fix_dtype = (
        "compute first moments in the gradient's complex dtype and second moments from "
        "|g|**2 = g * conj(g) in its real dtype (gradopt.core._numerics.abs_sq), and build the "
        "state with the dtypes of the complex parameters (see docs/complex.md)."
    )
    cparams = _to_complex(params, 1 - 0.5j)
    cgrads = _default_grads(cparams, len(real_grads), seed=len(real_grads) + 1)
    _check_init(tx, cparams)
    try:
        eager = run.run(
            tx, cgrads, cparams, check=_step_checker("complex: stable state", "complex")
        )
    except _Failure:
        raise
    except Exception as e:  # noqa: BLE001
        _fail(
            "complex: update runs",
            f"update on complex64 params and gradients raised {type(e).__name__}: {e}",
            fix_dtype + " A rule without a complex form should refuse complex parameters at "
            "init instead: wrap it in gradopt.real_only(tx, name=...), and test it with "
            "gradopt.testing.check_refuses_complex.",
        )
    _finite("complex: finite updates", eager, fix_dtype)
    step = _check_jit(run, tx, cgrads, cparams, eager, rtol, atol) if jit else None
    if not laws:
        return
    # phase equivariance: rotating every gradient and parameter by e^{i theta}
    # rotates each output leaf by it (a step) or leaves it unchanged (a statistic
    # of |g|, such as root_mean_square's output); the same compiled step serves
    turned, _ = run.run(tx, [_turn(g) for g in cgrads], _turn(cparams), step)
    # compared at 1e-2: a cancellation (a centred variance's first step) loses digits
    # differently once rotated, while a rule that breaks the law is off by O(1)
    _check_phase(turned, eager[0], max(10 * rtol, 1e-2), 10 * atol)
    # restricted to the real axis, the complex rule is the real one
    embedded, _ = run.run(tx, [_to_complex(g) for g in real_grads], _to_complex(params), step)
    _close(
        "complex: real parameters embedded",
        [jax.tree.map(jnp.real, u) for u in embedded],
        real_updates,
        rtol,
        atol,
        "on complex parameters with zero imaginary part the rule must reduce to the real rule "
        "(|g|**2 = g**2 there).",
    )
    _close(
        "complex: real parameters embedded",
        [jax.tree.map(jnp.imag, u) for u in embedded],
        [jax.tree.map(jnp.zeros_like, u) for u in real_updates],
        rtol,
        atol,
        "real gradients on the real axis must give real updates.",
    )


def _turn(tree):
    """Complex leaves multiplied by the phase ``e^{0.7 i}``; other leaves unchanged."""

    def turn(x):
        if jnp.issubdtype(jnp.result_type(x), jnp.complexfloating):
            return x * jnp.asarray(_PHASE, jnp.result_type(x))
        return x

    return jax.tree.map(turn, tree)


def _check_phase(turned, updates, rtol, atol) -> None:
    for i, (t_tree, u_tree) in enumerate(zip(turned, updates, strict=True)):
        for (path, t), u in zip(_paths(t_tree), jax.tree.leaves(u_tree), strict=True):
            t, u = np.asarray(t), np.asarray(u)
            if np.allclose(t, u * _PHASE, rtol, atol) or np.allclose(t, u, rtol, atol):
                continue
            _fail(
                "complex: phase equivariance",
                f"step {i + 1}, leaf {path}: with gradients and parameters rotated by "
                f"e^(0.7i) the update is {t.ravel()[:4]}, neither the rotated update "
                f"{(u * _PHASE).ravel()[:4]} nor the update {u.ravel()[:4]}",
                "build the rule from g and |g|**2 = g * conj(g) only: g * g, the real and "
                "imaginary parts taken separately, or a sign of g break the rotation symmetry "
                "of complex parameters. A rule that has no such form should refuse complex "
                "parameters (gradopt.real_only).",
            )


def check_refuses_complex(tx, params, *, name: str) -> None:
    """Check that a real-only transform refuses complex parameters, naming itself.

    ``tx.init`` on the parameters must work; on their complex64 copies it
    must raise a TypeError whose message contains ``name`` and "supports real
    parameters only" (what :func:`gradopt.real_only` raises).

    Args:
      tx: the transform.
      params: a parameter tree with at least one floating leaf.
      name: the name the error message must give, e.g. ``"gradopt.lion"``.
        Keyword only.

    Raises:
      AssertionError: init accepted complex parameters, or raised another error.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> from gradopt.testing import check_refuses_complex
      >>> tx = gradopt.real_only(gradopt.sgd(0.1), name="my_sign_sgd")
      >>> check_refuses_complex(tx, {"w": jnp.ones(3)}, name="my_sign_sgd")
    """
    fix = (
        "wrap the rule in gradopt.real_only(tx, name=...), which raises the TypeError at init; "
        "or, if the rule has a complex form, test it with check_transform(..., "
        "complex_params=True) instead."
    )
    if not _has_float_leaf(params):
        raise ValueError("check_refuses_complex: params need at least one floating leaf.")
    tx.init(params)
    try:
        tx.init(_to_complex(params))
    except TypeError as e:
        message = str(e)
        if name not in message or "supports real parameters only" not in message:
            _fail(
                "refuses complex",
                f"init raised a TypeError that does not name {name!r} and say it supports "
                f"real parameters only: {message}",
                fix,
            )
        return
    except Exception as e:  # noqa: BLE001
        _fail("refuses complex", f"init raised {type(e).__name__}, not TypeError: {e}", fix)
    _fail("refuses complex", "init accepted complex parameters", fix)


def check_transform(
    tx,
    params,
    grads=None,
    *,
    steps: int = 3,
    pass_params: bool = False,
    extra_args: Mapping[str, Any] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    bfloat16: bool = True,
    vmap: bool = True,
    chains: bool = True,
    optax_chain: bool | None = None,
    seed: int = 0,
    complex_params: bool = False,
    complex_laws: bool = True,
) -> CheckResult:
    """Check that a gradient transformation keeps the protocol's promises.

    The checks, in order (the first that fails raises):

    1. ``init`` gives a state of arrays (no Python numbers), and the same tree
       structure, shapes and dtypes under ``jax.eval_shape`` (init does not
       depend on the parameters' values).
    2. Op by op, ``steps`` updates keep the gradient's tree, shapes and dtypes,
       give finite values, and keep the state's tree structure, shapes and dtypes.
    3. Under ``jax.jit`` the update is traced once for all steps (the second step
       does not recompile), and jit and no-jit agree.
    4. With bfloat16 params and gradients the updates are bfloat16 and finite and
       the state is stable.
    5. ``jax.jit(jax.vmap(update))`` over a batch of two states (the gradients,
       and the gradients halved) matches two separate runs.
    6. Inside ``gradopt.chain`` and ``optax.chain`` (between identities) the
       updates and the state's leaves equal the transform's own.
    7. With ``complex_params=True``, on complex copies of the floating
       parameters (complex64; complex128 for float64) and complex gradients:
       checks 1 to 3 again (updates of the gradient's complex dtype, state
       stable, finite, jit); then, unless ``complex_laws=False``, two laws of
       every rule built from ``g`` and ``|g|**2 = g * conj(g)``: rotating all
       gradients and parameters by a phase ``e^{i theta}`` rotates the updates
       by it, and on the real axis (zero imaginary parts) the updates are the
       real rule's.

    Parameters that are already complex run through checks 1 to 6 as given.

    Args:
      tx: the transform: any object with ``init`` and ``update``.
      params: a parameter tree (arrays, Python scalars, ``None`` leaves).
      grads: one gradient tree shaped like ``params``, fed at every step; by
        default ``steps`` random trees (fixed seed, values representable in
        bfloat16).
      steps: number of updates per run (at least 2, so recompilation shows).
      pass_params: pass ``params`` to ``update`` (transforms that need them, such
        as decayed weights); otherwise ``params=None``.
      extra_args: keyword arguments for every ``update`` call (``{"value":
        loss}``). ``optax.chain`` drops extra arguments of transforms that are not
        optax's own, so that chain is then skipped unless ``optax_chain=True``.
      rtol, atol: tolerances of the comparisons (jit, vmap, chains).
      bfloat16, vmap, chains: switch those checks off (say why in your test).
      optax_chain: run the check inside ``optax.chain`` (default: when no
        ``extra_args`` are given).
      seed: the seed of the default gradients.
      complex_params: also run check 7 (the transform supports complex
        parameters; a rule without a complex form is checked with
        :func:`check_refuses_complex` instead).
      complex_laws: the two laws of check 7; switch them off for random
        transforms (gradient noise), whose noise does not rotate.

    Returns:
      A :class:`CheckResult` with the gradients, updates and states of the runs.

    Raises:
      AssertionError: a check failed; the message names it, says what broke and
        how to fix it.
      ImportError: chex (or optax, for the optax.chain check) is not installed.
      TypeError: ``tx`` is not a transform.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradopt
      >>> from gradopt.testing import check_transform
      >>> result = check_transform(gradopt.adam(1e-3), {"w": jnp.ones((2, 3))})
      >>> len(result.updates)
      3
    """
    _require("chex")
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"check_transform: tx is {tx!r} of type {type(tx).__name__}, not a gradient "
            "transformation; pass an object with init and update, such as gradopt.adam(1e-3)."
        )
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"check_transform: steps must be an int >= 2, got {steps!r}.")
    extra_args = dict(extra_args or {})
    if optax_chain is None:
        optax_chain = not extra_args
    run = _Runner(tx, pass_params, extra_args)
    if grads is None:
        grads_list = _default_grads(params, steps, seed)
    else:
        grads_list = [grads] * steps

    init_state = _check_init(tx, params)
    try:
        eager = run.run(tx, grads_list, params, check=_step_checker("stable state", "no jit"))
    except _Failure:
        raise
    except Exception as e:  # noqa: BLE001
        _fail(
            "update runs",
            f"update raised {type(e).__name__}: {e}",
            "if update needs params, pass pass_params=True; extra arguments go in extra_args.",
        )
    del init_state
    _finite(
        "finite updates",
        eager,
        "guard divisions and square roots with eps; finite gradients must give finite updates.",
    )
    jstep = _check_jit(run, tx, grads_list, params, eager, rtol, atol)

    b_updates = b_state = None
    if bfloat16 and _has_float_leaf(params):
        p16 = _to_bfloat16(params)
        b_updates, b_state = run.run(
            tx, [_to_bfloat16(g) for g in grads_list], p16, check=_step_checker("bfloat16", "bf16")
        )
        _finite(
            "bfloat16",
            (b_updates, b_state),
            "compute in float32 (x.astype(jnp.float32)) and cast the results back to the "
            "gradient's dtype; add eps in float32, where it does not round away.",
        )
    if vmap:
        _check_vmap(run, tx, grads_list, params, eager, jstep, rtol, atol)
    if chains:
        _check_chains(run, tx, grads_list, params, eager, rtol, atol, optax_chain)
    if complex_params and _has_float_leaf(params):
        _check_complex(run, tx, params, grads_list, eager[0], rtol, atol, complex_laws, jit=True)
    return CheckResult(grads_list, eager[0], eager[1], b_updates, b_state)
