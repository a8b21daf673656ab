"""Equivalence of two parsed answers: math-verify plus the rules it lacks (sgpo-method.md,
Notation: the verifier). Used by `sgpo_lib.grading.check` inside the grading worker.

- math-verify's `verify`, kept only when two plain numbers also agree to a relative
  `NUMERIC_REL_TOL` (its 6-decimal rounding makes any two numbers below 5e-7 equal);
- solution sets: an inequality, a chain `a <= x <= b`, a list of inequalities (read as "or"),
  `x \\in S`, an interval or a union of intervals are all turned into a sympy set of reals and
  compared as sets;
- solution families: `a + c*k` with an integer parameter `k`, `n` or `m` (one per element)
  equals `b + c*n` when (a - b)/c is an integer; lists of families match one to one;
- two equations or inequalities in different symbols skip math-verify (it would `solve` both for
  every symbol, which can take minutes, to find them different);
- hyperbolic functions: an expression with `sinh`/`cosh`/`tanh` equals its form in `exp`
  (`\\sinh(at)/a` = `(e^{at} - e^{-at})/(2a)`), which sympy's `simplify` alone misses.
"""

from __future__ import annotations

NUMERIC_REL_TOL = 1e-4  # plain numbers that are not both integers agree to this relative difference

_INT_PARAMS = frozenset({"k", "n", "m"})


def _relatively_close(gold, pred) -> bool:
    """False for two numbers whose relative difference exceeds `NUMERIC_REL_TOL`."""
    if not (getattr(gold, "is_number", False) and getattr(pred, "is_number", False)):
        return True
    try:
        g, p = complex(gold.evalf()), complex(pred.evalf())
    except (TypeError, ValueError):
        return True
    scale = max(abs(g), abs(p))
    return scale == 0 or abs(g - p) <= NUMERIC_REL_TOL * scale


def _as_real_set(e):
    """A sympy set of reals for interval-like answers (see the module docstring), else None."""
    import sympy as sp

    if isinstance(e, sp.Eq) and isinstance(e.rhs, sp.Set):
        e = e.rhs
    if isinstance(e, (sp.Interval, sp.Union)):
        return e
    if isinstance(e, (sp.core.relational.Relational, sp.And, sp.Or)) and not isinstance(e, (sp.Eq, sp.Ne)):
        return e.as_set() if len(e.free_symbols) == 1 else None
    if isinstance(e, sp.FiniteSet) and len(e) and all(isinstance(x, (sp.core.relational.Relational, sp.And, sp.Or)) for x in e):
        parts = [_as_real_set(x) for x in e]
        return None if any(p is None for p in parts) else sp.Union(*parts)
    return None


def _family(e):
    """(offset, |period|) of `offset + period * t` with one integer parameter t, else None."""
    import sympy as sp

    params = [s for s in e.free_symbols if s.name in _INT_PARAMS]
    if len(params) != 1:
        return None
    t = params[0]
    period = sp.diff(e, t)
    offset = sp.expand(e - period * t)
    if period.free_symbols or offset.free_symbols or period == 0:
        return None
    return offset, abs(period)


def _same_family(a, b) -> bool:
    import sympy as sp

    return a[1].equals(b[1]) is True and sp.simplify((a[0] - b[0]) / a[1]).is_integer is True


def _families(e) -> list | None:
    import sympy as sp

    if isinstance(e, sp.Eq) and isinstance(e.lhs, sp.Symbol):
        e = e.rhs
    items = list(e) if isinstance(e, sp.FiniteSet) else [e]
    found = [_family(x) if isinstance(x, sp.Expr) else None for x in items]
    return None if any(f is None for f in found) else found


def _families_match(gold, pred) -> bool:
    g, p = _families(gold), _families(pred)
    if not g or not p or len(g) != len(p):
        return False
    left = list(p)
    for fam in g:
        match = next((x for x in left if _same_family(fam, x)), None)
        if match is None:
            return False
        left.remove(match)
    return True


def equivalent(gold_parsed, pred_parsed) -> bool:
    """Equivalence of two math-verify parses (each `[sympy_expr, str]`)."""
    from math_verify import verify

    gold, pred = gold_parsed[0], pred_parsed[0]
    if not _relations_in_other_variables(gold, pred) and verify(list(gold_parsed), list(pred_parsed), timeout_seconds=None):
        return _relatively_close(gold, pred)
    g_set, p_set = _as_real_set(gold), _as_real_set(pred)
    if g_set is not None and p_set is not None:
        return g_set.symmetric_difference(p_set).is_empty is True
    return _families_match(gold, pred) or _same_in_exp(gold, pred)


def _relations_in_other_variables(gold, pred) -> bool:
    """True for two equations or inequalities over different sets of symbols: math-verify cannot
    match them, and would `solve` both for all their symbols first (minutes on a long equation)."""
    import sympy as sp

    rel = sp.core.relational.Relational
    return isinstance(gold, rel) and isinstance(pred, rel) and gold.free_symbols != pred.free_symbols


def _same_in_exp(gold, pred) -> bool:
    """Two expressions, one with hyperbolic functions, equal once both are written with `exp`."""
    import sympy as sp

    if not (isinstance(gold, sp.Expr) and isinstance(pred, sp.Expr)):
        return False
    if not (gold.atoms(sp.sinh, sp.cosh, sp.tanh) or pred.atoms(sp.sinh, sp.cosh, sp.tanh)):
        return False
    return sp.simplify((gold - pred).rewrite(sp.exp)) == 0
