"""The few distributions the verdicts need, in pure Python (the GPU runners have no SciPy).

Student's t for any degrees of freedom through the regularized incomplete
beta function, its quantiles by bisection, the two-sample and paired t, and
Fisher's exact test for 2 x 2 tables of counts.
"""

from __future__ import annotations

import functools
import math
import statistics


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300

    def guard(value: float) -> float:
        return value if abs(value) > tiny else tiny

    c, d = 1.0, 1.0 / guard(1.0 - (a + b) * x / (a + 1))
    total = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 / guard(1.0 + numerator * d)
            c = guard(1.0 + numerator / c)
            total *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return total


def t_sf(t: float, df: float) -> float:
    """P(T >= t) for Student's t with ``df`` > 0 degrees of freedom; math.inf df is the standard normal."""
    if math.isinf(df):
        return 0.5 * math.erfc(t / math.sqrt(2))
    tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


@functools.lru_cache(maxsize=4096)  # the bench asks for the same few (alpha, df) pairs many times
def t_quantile(upper: float, df: float) -> float:
    """The t with P(T >= t) = ``upper`` (0 < upper <= 0.5), by bisection on t_sf."""
    if not 0 < upper <= 0.5:
        raise ValueError(f"an upper tail probability in (0, 0.5] is needed, got {upper}")
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(1 - upper)
    low, high = 0.0, 1.0
    while t_sf(high, df) > upper:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_sf(middle, df) > upper:
            low = middle
        else:
            high = middle
        if high - low < 1e-10 * max(1.0, high):
            break
    return (low + high) / 2


def t_test_power(critical: float, df: float, shift: float, two_sided: bool = True) -> float:
    """The power of a t-test: P(|T| > critical), or P(T > critical) one-sided, for T = (Z + shift) / sqrt(V / df)
    with V chi-square on ``df``, a true shift of ``shift`` standard errors (the noncentral t).  Integrated over
    log V by Simpson's rule, on a range holding all but about 1e-12 of V."""
    half = df / 2
    log_norm = -half * math.log(2) - math.lgamma(half)
    low = math.log(df) - max(28 / half, 12 * math.sqrt(2 / df))
    high = math.log(df + 12 * math.sqrt(2 * df) + 60)
    steps = 600
    width = (high - low) / steps
    total = 0.0
    for i in range(steps + 1):
        log_v = low + i * width
        v = math.exp(log_v)
        density = math.exp(half * log_v - v / 2 + log_norm)  # of log V
        scale = critical * math.sqrt(v / df)
        tail = 0.5 * math.erfc((scale - shift) / math.sqrt(2))
        if two_sided:
            tail += 0.5 * math.erfc((scale + shift) / math.sqrt(2))
        total += (1 if i in (0, steps) else 4 if i % 2 else 2) * density * tail
    return total * width / 3


@functools.lru_cache(maxsize=4096)
def detectable_in_se(alpha: float, df: float, power: float, two_sided: bool = True) -> float:
    """The true shift, in standard errors, that a t-test at ``alpha`` on ``df`` finds with probability ``power``:
    the noncentral t's, by bisection on t_test_power."""
    critical = t_quantile(alpha / 2 if two_sided else alpha, df)
    low, high = 0.0, critical + 10.0
    while t_test_power(critical, df, high, two_sided) < power:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        if t_test_power(critical, df, middle, two_sided) < power:
            low = middle
        else:
            high = middle
        if high - low < 1e-6 * high:
            break
    return (low + high) / 2


def pooled_sd(a: list[float], b: list[float]) -> float:
    """The spread of two samples around their own means, pooled (0 without a df)."""
    df = len(a) + len(b) - 2
    if df <= 0:
        return 0.0
    squares = 0.0
    for side in (a, b):
        mean = math.fsum(side) / len(side)  # once per side: history's level-shift search calls this per split
        squares += math.fsum((x - mean) ** 2 for x in side)
    return math.sqrt(squares / df)


def pooled_t(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """(mean of b minus mean of a, its standard error, df) of Student's two-sample t with the pooled variance: exact
    when both are drawn from one normal distribution, the null of unchanged training.  Welch's test, the usual
    choice for unequal spreads, is not: at the bench's alphas, with unequal counts, its estimated df overstate and
    it alarms up to x12 as often as stated (python -m bench.false_alarms --unpaired).  2 values or more a side."""
    n, k = len(a), len(b)
    change = math.fsum(b) / k - math.fsum(a) / n
    return change, pooled_sd(a, b) * math.sqrt(1 / n + 1 / k), float(n + k - 2)


def paired_t(differences: list[float]) -> tuple[float, float, float]:
    """(mean of the paired differences, its standard error, df): Student's paired t; 2 differences or more."""
    n = len(differences)
    return statistics.fmean(differences), statistics.stdev(differences) / math.sqrt(n), n - 1.0


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p of Fisher's exact test for the table [[a, b], [c, d]]: the probability, with the margins fixed,
    of a table no more likely than this one."""
    row, column, n = a + b, a + c, a + b + c + d

    def probability(x: int) -> float:
        return math.comb(column, x) * math.comb(n - column, row - x) / math.comb(n, row)

    observed = probability(a)
    tables = range(max(0, row + column - n), min(row, column) + 1)
    return min(1.0, sum(p for p in map(probability, tables) if p <= observed * (1 + 1e-9)))


def level_shift(series: list[float], alpha: float, min_shift: float,
                min_side: int = 3) -> tuple[int, float, float, float] | None:
    """The split of ``series`` into an earlier and a later level with the largest pooled t (exact when nothing
    changed), when its p, times the number of splits tried (Bonferroni), is below ``alpha`` and the levels differ by
    ``min_shift`` or more, as a windowed t-test with a minimum effect flags a change point.  Returns (index where
    the later level starts, earlier mean, later mean, adjusted p), or None.  Each level needs ``min_side`` values."""
    splits = range(min_side, len(series) - min_side + 1)
    best = None  # (|t|, split); every split has the same df, so the largest |t| has the smallest p
    for k in splits:
        change, se, _ = pooled_t(series[:k], series[k:])
        if abs(change) < min_shift:
            continue
        t = abs(change) / se if se else math.inf if change else 0.0
        if best is None or t > best[0]:
            best = (t, k)
    if best is None:
        return None
    t, k = best
    adjusted = min(1.0, 2 * t_sf(t, len(series) - 2) * len(splits)) if math.isfinite(t) else 0.0
    if adjusted >= alpha:
        return None
    return k, statistics.fmean(series[:k]), statistics.fmean(series[k:]), adjusted
