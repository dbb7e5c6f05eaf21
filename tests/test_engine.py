"""The sampling engine (servegen.engine): its law table, and that it sits below the models."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import servegen as sg
from servegen.engine import kernels, plan
from servegen.engine.kernels import law

ENGINE = Path(kernels.__file__).parent
#: what the engine may import from servegen: itself and the base layer below the models
ALLOWED = {"servegen.engine", "servegen._rng", "servegen._checks", "servegen.requests"}

LAWS = [
    ("poisson", 1.0),
    ("gamma", 0.4),
    ("gamma", 3.0),
    ("weibull", 0.6),
    ("weibull", 2.5),
    ("lognormal", 0.5),
    ("lognormal", 2.5),
    ("hyperexponential", 1.5),
    ("hyperexponential", 4.0),
]


def _h2(p, s):
    """The balanced two-phase exponential mixture as a scipy law (scipy has none built in)."""
    m1, m2 = 0.5 * s / p, 0.5 * s / (1 - p)
    parts = ((p, stats.expon(scale=m1)), (1 - p, stats.expon(scale=m2)))

    class Mixture(stats.rv_continuous):
        def _cdf(self, x):
            return sum(w * d.cdf(x) for w, d in parts)

        def _pdf(self, x):
            return sum(w * d.pdf(x) for w, d in parts)

        def _munp(self, n):  # raw moments in closed form (scipy would integrate)
            return sum(w * d.moment(n) for w, d in parts)

    return Mixture(a=0.0)()


SCIPY = {"poisson": lambda k, s: stats.expon(scale=s), "gamma": lambda k, s: stats.gamma(k, scale=s),
         "weibull": lambda k, s: stats.weibull_min(k, scale=s), "lognormal": lambda k, s: stats.lognorm(k, scale=s),
         "hyperexponential": _h2}  # fmt: skip


def _servegen_imports(path: Path) -> set[str]:
    """Absolute names of the servegen modules ``path`` imports (anywhere in the file)."""
    pkg = ["servegen", *path.relative_to(ENGINE.parent).parent.parts]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                if node.module:
                    out.add(".".join([*base, node.module]))
                else:  # `from .. import _rng`: the names are modules
                    out |= {".".join([*base, a.name]) for a in node.names}
            elif node.module and node.module.startswith("servegen"):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("servegen")}
    return out


@pytest.mark.parametrize("path", sorted(ENGINE.glob("*.py")), ids=lambda p: p.name)
def test_engine_imports_no_model_workload_pool_or_format(path):
    above = {m for m in _servegen_imports(path) if not any(m == a or m.startswith(a + ".") for a in ALLOWED)}
    assert not above, f"{path.name} imports {sorted(above)} (above the engine)"


@pytest.mark.parametrize("name,cv", LAWS)
def test_law_from_rate_and_cv_has_that_mean_and_cv(name, cv):
    row = law(name)
    shape, scale = row.from_rate_cv(rate=4.0, cv=cv)
    dist = SCIPY[name](shape, scale)
    assert dist.mean() == pytest.approx(0.25, rel=1e-9)
    want_cv = 1.0 if name == "poisson" else cv
    assert dist.std() / dist.mean() == pytest.approx(want_cv, rel=1e-6)
    assert float(row.mean(shape, scale)) == pytest.approx(0.25, rel=1e-12)
    assert float(row.cv(shape)) == pytest.approx(want_cv, rel=1e-6)


@pytest.mark.parametrize("name,cv", LAWS)
def test_law_sampler_logpdf_and_cdf_agree_with_scipy(name, cv):
    row = law(name)
    shape, scale = row.from_rate_cv(rate=2.0, cv=cv)
    x = row.sample(shape, scale, 20_000, rng=np.random.default_rng(3))
    dist = SCIPY[name](shape, scale)
    assert stats.kstest(x, dist.cdf).pvalue > 1e-3
    pts = np.array([0.05, 0.5, 2.0])
    np.testing.assert_allclose(row.cdf(pts, shape, scale), dist.cdf(pts), rtol=1e-12)
    np.testing.assert_allclose(row.logpdf(pts, shape, scale), dist.logpdf(pts), rtol=1e-12)
    # a wrong parameterization (e.g. scale taken as a rate) fails the KS test
    assert stats.kstest(x * 2, dist.cdf).pvalue < 1e-6


def test_deterministic_law_is_a_step():
    row = law("deterministic")
    shape, scale = row.from_rate_cv(rate=4.0, cv=0.0)
    assert row.sample(shape, scale, 3, rng=np.random.default_rng(0)).tolist() == [0.25] * 3
    assert row.cdf(np.array([0.2, 0.25, 0.3]), shape, scale).tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="'deterministic' has no density"):
        row.logpdf(0.25, shape, scale)


@pytest.mark.parametrize(
    "alias,name",
    [("exponential", "poisson"), ("Exponential", "poisson"), ("poisson", "poisson"), ("Gamma", "gamma"),
     ("gamma", "gamma"), ("Weibull", "weibull"), ("deterministic", "deterministic"), ("lognormal", "lognormal"),
     ("H2", "hyperexponential"), ("Hyperexponential", "hyperexponential")],
)  # fmt: skip
def test_law_lookup_by_any_vocabulary(alias, name):
    assert law(alias).name == name
    assert kernels.law_by_code(law(alias).code) is law(alias)


def test_unknown_law_names_the_rule():
    with pytest.raises(ValueError, match=r"law: `name` must be one of .*'exponential'.*, got 'lognorm'"):
        law("lognorm")
    with pytest.raises(ValueError, match=r"law_by_code: `code` must be one of \[0, 1, 2, 3, 5, 6\], got 4"):
        kernels.law_by_code(kernels.OBJECT)  # an object piece has no row


def test_arrivals_and_pool_releases_use_the_law_table():
    # an arrival model's compiled piece is the table's unit-mean law for its CV
    for proc, name in ((sg.Gamma(rate=3, cv=2.0), "gamma"), (sg.Weibull(rate=3, cv=0.7), "weibull")):
        p = proc._pieces()
        shape, scale = law(name).from_rate_cv(1.0, proc.cv)
        assert (p.family[0], p.shape[0], p.scale[0]) == (law(name).code, shape, scale)
    s = sg.ArrivalSchedule(times=[0, 1], rates=[1, 1], cvs=[1, 2], laws=["poisson", "weibull"])
    assert s.family_codes.tolist() == [law("poisson").code, law("weibull").code]
    from servegen.pools._release import LAW_CODES

    assert (
        {n: c for n, c in LAW_CODES.items() if n}
        == {r.release_name: r.release_code for r in kernels.RELEASE_LAWS.values()}
        == {"Gamma": 1, "Weibull": 2}
    )


def test_engine_samples_plain_clients_like_the_workload():
    c = sg.Client(arrival=sg.Gamma(rate=2, cv=3), input_tokens=sg.Exponential(mean=50), output_tokens=7)
    wl = sg.Workload({"x": c, "y": c}, rate=10.0)
    direct = plan.sample({"x": c, "y": c}, 1200.0, np.random.SeedSequence(5), rate=10.0)
    assert direct.equals(wl.sample(1200, rng=5))
    assert c.sample(600, rng=2).equals(sg.Workload([c]).sample(600, rng=2))
    parts = list(plan.iter_chunks({"x": c, "y": c}, 1200.0, 250.0, np.random.SeedSequence(5), rate=10.0))
    assert sg.Requests.concat(parts).equals(direct)


def test_compiled_arrivals_are_kept_read_only_and_leave_the_users_arrays_alone():
    times = np.array([0.0, 300.0])
    sched = sg.ArrivalSchedule(times=times, rates=[1.0, 4.0], laws=["gamma", "weibull"], cvs=[2.0, 0.7])
    c = sg.Client(arrival=sched, input_tokens=5, output_tokens=7)
    first = c.sample(900, rng=3)
    pieces = c._pieces()
    assert pieces is c._pieces()  # compiled once per client, not per sample call
    with pytest.raises(ValueError, match="read-only"):
        pieces.rates[0] = 99.0
    assert c.sample(900, rng=3).equals(first)
    times[1] = 300.0  # the caller's array is still theirs to write
    assert times.flags.writeable


@pytest.mark.slow
def test_a_pool_spec_loads_before_anything_imported_the_pools():
    # `import servegen` is lazy: Workload.from_dict resolves {"kind": "pool"} through the
    # model registry, which must find the pools' builder without their module loaded yet.
    code = (
        "import sys, servegen as sg\n"
        "assert 'servegen.pools' not in sys.modules\n"
        "spec = {'kind': 'workload', 'clients': {'kind': 'pool', 'name': 'language/m-large', 'end': 600.0},"
        " 'rate': 5.0}\n"
        "wl = sg.Workload.from_dict(spec)\n"
        "print(type(wl._source).__name__, sg.Workload.from_dict(wl.to_dict()) == wl)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Pool", "True"]
