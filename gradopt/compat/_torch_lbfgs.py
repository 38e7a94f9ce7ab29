"""``torch.optim.LBFGS``: one ``update`` is one ``LBFGS.step(closure)``, inside ``lax.while_loop``.

The parameters are handled as one flat float32 vector (torch concatenates them
the same way). Every scalar torch keeps as a float32 tensor is float32 here;
the few it keeps in double (the loss, ``d_norm``) are float32 too, so
trajectories agree to float32 rounding, not bit for bit.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradopt.compat._torch_common import _non_negative, _where
from gradopt.core._base import transform
from gradopt.core._checks import check_gradients, check_scalar

_F32 = jnp.float32
_C1, _C2 = 1e-4, 0.9  # torch's strong Wolfe constants


class TorchLbfgsState(NamedTuple):
    """State of :func:`lbfgs` (torch's ``optimizer.state``), flat float32 vectors.

    Attributes:
      d, t: the last direction and step length.
      old_dirs, old_stps, ro: the curvature pairs ``y``, ``s`` and ``1 / y.s``,
        oldest first, in the last rows of ``history_size`` rows; a row with
        ``ro == 0`` holds no pair (a stored pair has ``y.s > 1e-10``).
      h_diag: the initial inverse-Hessian scale ``y.s / y.y``.
      prev_flat_grad, prev_loss: gradient and loss at the start of the last iteration.
      n_iter, func_evals: iterations and function evaluations so far (all steps).
    """

    d: Any
    t: Any
    old_dirs: Any
    old_stps: Any
    ro: Any
    h_diag: Any
    prev_flat_grad: Any
    prev_loss: Any
    n_iter: Any
    func_evals: Any


def _max_abs(v):
    """``max |v_i|``, 0 for an empty vector (torch's ``abs().max()`` raises there; an
    optimizer must accept parameters without entries)."""
    return jnp.max(jnp.abs(v), initial=0.0)


def _ravel(tree):
    """The leaves of ``tree`` as one float32 vector, and the function that undoes it
    (each leaf back to its shape and dtype); torch concatenates its parameters alike."""
    leaves, treedef = jax.tree.flatten(tree)
    leaves = [jnp.asarray(x) for x in leaves]
    flat = jnp.concatenate([jnp.ravel(x).astype(_F32) for x in leaves] or [jnp.zeros((0,), _F32)])
    sizes = [x.size for x in leaves]

    def unravel(vector):
        out, start = [], 0
        for x, size in zip(leaves, sizes, strict=True):
            out.append(vector[start : start + size].reshape(x.shape).astype(x.dtype))
            start += size
        return jax.tree.unflatten(treedef, out)

    return flat, unravel


def _init(params, *, history_size, **hyper):
    del hyper
    flat, _ = _ravel(params)
    n = flat.size
    zeros = jnp.zeros((n,), _F32)
    return TorchLbfgsState(
        d=zeros,
        t=jnp.zeros([], _F32),
        old_dirs=jnp.zeros((history_size, n), _F32),
        old_stps=jnp.zeros((history_size, n), _F32),
        ro=jnp.zeros((history_size,), _F32),
        h_diag=jnp.ones([], _F32),
        prev_flat_grad=zeros,
        prev_loss=jnp.zeros([], _F32),
        n_iter=jnp.zeros([], jnp.int32),
        func_evals=jnp.zeros([], jnp.int32),
    )


# ----------------------------------------------------------------------------
# torch's line search, transcribed


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through two points with slopes, clipped to the bounds."""
    if bounds is None:
        lo, hi = jnp.minimum(x1, x2), jnp.maximum(x1, x2)
    else:
        lo, hi = bounds
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.maximum(d2_square, 0.0))
    left = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    right = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    min_pos = jnp.where(x1 <= x2, left, right)
    return jnp.where(d2_square >= 0, jnp.minimum(jnp.maximum(min_pos, lo), hi), (lo + hi) / 2.0)


def _strong_wolfe(obj, t, d, f, g, gtd, tolerance_change, max_ls):
    """torch's ``_strong_wolfe``: ``(f_new, g_new, t, ls_func_evals)``."""
    d_norm = _max_abs(d)
    f_new, g_new = obj(t)
    zero = jnp.zeros([], _F32)
    # phase 1: bracket. carry: ls_iter, t, f_new, g_new, gtd_new, t_prev, f_prev,
    # g_prev, gtd_prev, how (0 running, 1 bracket, 2 done), evals
    start = (jnp.int32(0), t, f_new, g_new, g_new @ d, zero, f, g, gtd, jnp.int32(0), jnp.int32(1))

    def p1_test(c):
        ls_iter, t, f_new, _, gtd_new, _, f_prev, _, _, _, _ = c
        armijo = (f_new > f + _C1 * t * gtd) | ((ls_iter > 1) & (f_new >= f_prev))
        curvature = jnp.abs(gtd_new) <= -_C2 * gtd
        return jnp.where(armijo, 1, jnp.where(curvature, 2, jnp.where(gtd_new >= 0, 1, 0)))

    def p1_cond(c):
        return (c[0] < max_ls) & (c[9] == 0)

    def p1_body(c):
        how = p1_test(c)

        def advance(c):
            ls_iter, t, f_new, g_new, gtd_new, t_prev, f_prev, g_prev, gtd_prev, _, evals = c
            bounds = (t + 0.01 * (t - t_prev), t * 10)
            t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds)
            f_next, g_next = obj(t_next)
            return (
                ls_iter + 1,
                t_next,
                f_next,
                g_next,
                g_next @ d,
                t,
                f_new,
                g_new,
                gtd_new,
                jnp.int32(0),
                evals + 1,
            )

        return jax.lax.cond(how == 0, advance, lambda c: (*c[:9], how, c[10]), c)

    ls_iter, t, f_new, g_new, gtd_new, t_prev, f_prev, g_prev, gtd_prev, how, evals = (
        jax.lax.while_loop(p1_cond, p1_body, start)
    )
    exhausted = how == 0  # ls_iter == max_ls: bracket [0, t]
    done = how == 2
    b = jnp.stack([jnp.where(exhausted, 0.0, jnp.where(done, t, t_prev)), t])
    bf = jnp.stack([jnp.where(exhausted, f, jnp.where(done, f_new, f_prev)), f_new])
    bg = jnp.stack([jnp.where(exhausted, g, jnp.where(done, g_new, g_prev)), g_new])
    bgtd = jnp.stack([jnp.where(done, gtd_new, gtd_prev), gtd_new])
    low = jnp.where(bf[0] <= bf[1], 0, 1)

    # phase 2: zoom. carry: ls_iter, b, bf, bg, bgtd, low, done, insuf, evals, stop
    def p2_cond(c):
        ls_iter, b, _, _, _, _, done, _, _, stop = c
        return ~done & (ls_iter < max_ls) & ~stop

    def p2_body(c):
        ls_iter, b, bf, bg, bgtd, low, done, insuf, evals, _ = c
        stop = jnp.abs(b[1] - b[0]) * d_norm < tolerance_change

        def zoom(c):
            ls_iter, b, bf, bg, bgtd, low, done, insuf, evals, _ = c
            high = 1 - low
            t = _cubic_interpolate(b[0], bf[0], bgtd[0], b[1], bf[1], bgtd[1])
            b_max, b_min = jnp.max(b), jnp.min(b)
            eps = 0.1 * (b_max - b_min)
            near = jnp.minimum(b_max - t, t - b_min) < eps
            move = near & (insuf | (t >= b_max) | (t <= b_min))
            moved = jnp.where(jnp.abs(t - b_max) < jnp.abs(t - b_min), b_max - eps, b_min + eps)
            t = jnp.where(move, moved, t)
            insuf = near & ~move
            f_new, g_new = obj(t)
            gtd_new = g_new @ d
            worse = (f_new > f + _C1 * t * gtd) | (f_new >= bf[low])
            # worse: the new point replaces the high end
            b_w, bf_w = b.at[high].set(t), bf.at[high].set(f_new)
            bg_w, bgtd_w = bg.at[high].set(g_new), bgtd.at[high].set(gtd_new)
            low_w = jnp.where(bf_w[0] <= bf_w[1], 0, 1)
            # better: maybe the old low end becomes the high end, then the new point is low
            done_b = jnp.abs(gtd_new) <= -_C2 * gtd
            flip = ~done_b & (gtd_new * (b[high] - b[low]) >= 0)
            b_b = jnp.where(flip, b.at[high].set(b[low]), b).at[low].set(t)
            bf_b = jnp.where(flip, bf.at[high].set(bf[low]), bf).at[low].set(f_new)
            bg_b = jnp.where(flip, bg.at[high].set(bg[low]), bg).at[low].set(g_new)
            bgtd_b = jnp.where(flip, bgtd.at[high].set(bgtd[low]), bgtd).at[low].set(gtd_new)
            return (
                ls_iter + 1,
                jnp.where(worse, b_w, b_b),
                jnp.where(worse, bf_w, bf_b),
                jnp.where(worse, bg_w, bg_b),
                jnp.where(worse, bgtd_w, bgtd_b),
                jnp.where(worse, low_w, low),
                ~worse & done_b,
                insuf,
                evals + 1,
                jnp.bool_(False),
            )

        return jax.lax.cond(stop, lambda c: (*c[:9], jnp.bool_(True)), zoom, c)

    start2 = (ls_iter, b, bf, bg, bgtd, low, done, jnp.bool_(False), evals, jnp.bool_(False))
    _, b, bf, bg, _, low, _, _, evals, _ = jax.lax.while_loop(p2_cond, p2_body, start2)
    return bf[low], bg[low], b[low], evals


# ----------------------------------------------------------------------------
# one step(closure)


def _add(count, k):
    """``count + k`` for an int32 counter, saturating at the int32 maximum."""
    limit = jnp.iinfo(jnp.int32).max
    return jnp.where(count > limit - k, limit, count + k).astype(jnp.int32)


def _two_loop(g, s):
    """The L-BFGS two-loop recursion: ``d = -H g`` from the stored pairs."""
    size = s.ro.shape[0]
    valid = s.ro != 0

    def backward(k, carry):
        q, al = carry
        i = size - 1 - k
        a = jnp.where(valid[i], (s.old_stps[i] @ q) * s.ro[i], 0.0)
        return q - a * s.old_dirs[i], al.at[i].set(a)

    q, al = jax.lax.fori_loop(0, size, backward, (-g, jnp.zeros((size,), _F32)))

    def forward(i, r):
        be = (s.old_dirs[i] @ r) * s.ro[i]
        return r + jnp.where(valid[i], al[i] - be, 0.0) * s.old_stps[i]

    return jax.lax.fori_loop(0, size, forward, q * s.h_diag)


def _update(
    updates,
    state,
    params=None,
    *,
    lr,
    max_iter,
    max_eval,
    tolerance_grad,
    tolerance_change,
    history_size,
    line_search_fn,
    value_fn=None,
    value=None,
    **extra,
):
    del extra, history_size
    where = _where("lbfgs")
    if params is None or value_fn is None:
        raise ValueError(
            f"{where} needs the parameters and the loss: call update(grads, state, params, "
            "value_fn=loss_of_params), where loss_of_params(params) returns the scalar loss "
            "(it is evaluated as often as torch's closure would be)."
        )
    updates = check_gradients(updates, params)
    static = dict(
        value_fn=value_fn, max_iter=max_iter, max_eval=max_eval, line_search_fn=line_search_fn
    )
    dynamic = (updates, state, params, value, lr, tolerance_grad, tolerance_change)
    try:
        hash(value_fn)
    except TypeError:  # an unhashable loss: traced anew at every call
        return _step(*dynamic, **static)
    return _step_jit(*dynamic, **static)


def _step(
    updates,
    state,
    params,
    value,
    lr,
    tolerance_grad,
    tolerance_change,
    *,
    value_fn,
    max_iter,
    max_eval,
    line_search_fn,
):
    """One ``step(closure)``; jitted with the loss and the loop bounds static, so eager
    calls with the same loss reuse the compiled loops."""
    x0, unravel = _ravel(params)
    flat_grad = _ravel(updates)[0]

    def evaluate(x):
        loss, grads = jax.value_and_grad(value_fn)(unravel(x))
        return jnp.asarray(loss, _F32), _ravel(grads)[0]

    loss = jnp.asarray(value_fn(params) if value is None else value, _F32)
    state = state._replace(func_evals=_add(state.func_evals, 1))
    optimal = _max_abs(flat_grad) <= tolerance_grad

    def iteration(c):
        s, x, loss, g, n, evals, _ = c
        n, count = n + 1, _add(s.n_iter, 1)
        first = count == 1
        y, step = g - s.prev_flat_grad, s.d * s.t
        ys = y @ step
        keep = ~first & (ys > 1e-10)
        roll = lambda a, v: jnp.roll(a, -1, axis=0).at[-1].set(v)  # noqa: E731
        s = s._replace(
            old_dirs=jnp.where(keep, roll(s.old_dirs, y), s.old_dirs),
            old_stps=jnp.where(keep, roll(s.old_stps, step), s.old_stps),
            ro=jnp.where(first, 0.0, jnp.where(keep, roll(s.ro, 1.0 / ys), s.ro)),
            h_diag=jnp.where(first, 1.0, jnp.where(keep, ys / (y @ y), s.h_diag)),
        )
        d = jnp.where(first, -g, _two_loop(g, s))
        t = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * lr, lr)
        s = s._replace(d=d, t=t, prev_flat_grad=g, prev_loss=loss, n_iter=count)
        gtd = g @ d

        def move(args):
            s, x, loss, g, n, evals = args
            if line_search_fn == "strong_wolfe":
                obj = lambda t: evaluate(x + t * s.d)  # noqa: E731
                loss, g, t, ls_evals = _strong_wolfe(
                    obj, s.t, s.d, loss, g, gtd, tolerance_change, max_eval - evals
                )
                s = s._replace(t=t)
                x = x + t * s.d
            else:
                x = x + s.t * s.d
                last = n == max_iter
                loss, g = jax.lax.cond(last, lambda x: (loss, g), evaluate, x)
                ls_evals = jnp.where(last, 0, 1)
            evals = evals + ls_evals
            s = s._replace(func_evals=_add(s.func_evals, ls_evals))
            stop = (
                (n == max_iter)
                | (evals >= max_eval)
                | (_max_abs(g) <= tolerance_grad)
                | (_max_abs(s.d * s.t) <= tolerance_change)
                | (jnp.abs(loss - s.prev_loss) < tolerance_change)
            )
            return s, x, loss, g, n, evals, stop

        return jax.lax.cond(
            gtd > -tolerance_change,
            lambda a: (*a, jnp.bool_(True)),
            move,
            (s, x, loss, g, n, evals),
        )

    start = (state, x0, loss, flat_grad, jnp.int32(0), jnp.int32(1), optimal)
    state, x, *_ = jax.lax.while_loop(lambda c: ~c[-1], iteration, start)
    return unravel(x - x0), state


_step_jit = jax.jit(_step, static_argnames=("value_fn", "max_iter", "max_eval", "line_search_fn"))


def _check_int(where, name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be an integer >= {low}, got {value!r}.")
    if not (value == value and abs(value) != float("inf") and value == int(value) and value >= low):
        raise ValueError(f"{where}: {name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def lbfgs(
    lr=1,
    max_iter=20,
    max_eval=None,
    tolerance_grad=1e-07,
    tolerance_change=1e-09,
    history_size=100,
    line_search_fn=None,
):
    """``torch.optim.LBFGS``: one ``update`` does what one ``LBFGS.step(closure)`` does.

    ``update(grads, state, params, value_fn=loss_of_params)``, with ``grads``
    the gradient at ``params`` and ``loss_of_params(params)`` the scalar loss,
    runs up to ``max_iter`` iterations of limited-memory BFGS with ``g`` the
    current gradient and ``(s_i, y_i)`` the last ``history_size`` steps and
    gradient changes with ``y_i.s_i > 1e-10``::

        d = -H g       (two-loop recursion, H_0 = (y.s / y.y) I; d = -g the very first time)
        t = lr         (the very first iteration: min(1, 1 / sum|g|) * lr)
        w = w + t d    (t from the strong Wolfe line search if line_search_fn="strong_wolfe")

    and stops, as torch does, when ``max|g| <= tolerance_grad`` (also before
    the first iteration), ``g.d > -tolerance_change``, ``max|t d| <=
    tolerance_change``, ``|loss - previous loss| < tolerance_change``, after
    ``max_iter`` iterations or ``max_eval`` evaluations of the loss (the
    evaluation at ``params`` counts as one, as torch's first ``closure()``
    call does). The curvature pairs, ``d`` and ``t`` carry over to the next
    ``update``. Every loop is a ``lax.while_loop``: the step jits, with
    ``value_fn`` traced into it.

    Args:
      lr: the step length, >= 0 (a number).
      max_iter: iterations per update, an integer >= 1.
      max_eval: loss evaluations per update; None gives ``max_iter * 5 // 4``.
      tolerance_grad, tolerance_change: the stopping tolerances, >= 0.
      history_size: the number of curvature pairs kept, an integer >= 1.
      line_search_fn: None (fixed step ``lr``) or ``"strong_wolfe"``.

    Returns:
      A gradient transformation whose ``update`` needs ``params`` and
      ``value_fn``; it also accepts ``value`` (the loss at ``params``) to save
      that evaluation.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gradopt.compat import torch as torch_compat
      >>> loss = lambda p: jnp.sum((p["w"] - jnp.array([1.0, 2.0])) ** 2)
      >>> opt = torch_compat.lbfgs(line_search_fn="strong_wolfe")
      >>> params = {"w": jnp.zeros(2)}
      >>> state = opt.init(params)
      >>> updates, state = opt.update(jax.grad(loss)(params), state, params, value_fn=loss)
      >>> [round(float(x), 4) for x in params["w"] + updates["w"]]
      [1.0, 2.0]

    Note:
      optax's ``lbfgs`` does one iteration per ``update`` with its own zoom
      line search (``scale_by_zoom_linesearch``) and memory; this follows
      torch's step, its cubic-interpolation line search and its stopping
      rules, in float32.

    References:
      Nocedal and Wright, Numerical Optimization, 2nd ed., 2006, Algorithms
      7.4 (two-loop recursion) and 3.5-3.6 (strong Wolfe line search). Liu and
      Nocedal, On the limited memory BFGS method for large scale optimization,
      1989.
    """
    where = _where("lbfgs")
    if callable(lr):
        raise TypeError(f"{where}: lr must be a number, got the callable {lr!r}.")
    check_scalar(where, "lr", lr, low=0.0, fix="torch.optim requires lr >= 0.")
    max_iter = _check_int(where, "max_iter", max_iter, 1)
    max_eval = max_iter * 5 // 4 if max_eval is None else _check_int(where, "max_eval", max_eval, 1)
    _non_negative(where, "tolerance_grad", tolerance_grad)
    _non_negative(where, "tolerance_change", tolerance_change)
    history_size = _check_int(where, "history_size", history_size, 1)
    if line_search_fn not in (None, "strong_wolfe"):
        raise ValueError(
            f"{where}: line_search_fn must be None or 'strong_wolfe' (torch supports only "
            f"those), got {line_search_fn!r}."
        )
    return transform(
        _init,
        _update,
        lr=lr,
        max_iter=max_iter,
        max_eval=max_eval,
        tolerance_grad=tolerance_grad,
        tolerance_change=tolerance_change,
        history_size=history_size,
        line_search_fn=line_search_fn,
    )
