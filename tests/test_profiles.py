"""The shipped pool profiles (servegen.pools._profiles), their fidelity to the upstream release,
the release parser (servegen.pools._release) and the PMF helpers behind both (servegen.pools._pmf)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from servegen.pools import _pmf, _profiles
from servegen.pools._profiles import list_profiles, load_profile
from servegen.pools._release import POOLS, RawPool, read_pool

# name: (clients, 600 s windows, 6 h windows, fields, clients whose dataset.json is missing)
EXPECTED = {
    "language/m-large": (162, 2016, 56, ("input_tokens", "output_tokens"), 15),
    "language/m-mid": (109, 2016, 56, ("input_tokens", "output_tokens"), 35),
    "language/m-small": (43, 2016, 56, ("input_tokens", "output_tokens"), 5),
    "multimodal/mm-image": (
        35,
        144,
        4,
        (
            "text_tokens",
            "image_tokens",
            "audio_tokens",
            "video_tokens",
            "image_count",
            "audio_count",
            "video_count",
            "output_tokens",
        ),
        0,
    ),
    "reason/deepseek-r1": (73, 144, 4, ("input_tokens", "output_tokens", "reason_ratio"), 0),
}
KS_MAX, MEAN_REL_MAX, P50_REL_MAX, P99_REL_MAX = 0.01, 0.01, 0.05, 0.03


# --------------------------------------------------------------------------- loader


def test_list_profiles_metadata():
    metas = list_profiles()
    assert [m["name"] for m in metas] == list(EXPECTED)
    for m in metas:
        n_c, n_w, n_d, fields, n_imp = EXPECTED[m["name"]]
        assert (m["n_clients"], m["n_windows"], m["n_length_windows"]) == (n_c, n_w, n_d)
        assert (m["window_s"], m["length_window_s"], m["span_s"]) == (600, 21600, 600 * n_w)
        assert tuple(m["fields"]) == fields and m["n_imputed"] == n_imp == len(m["imputed_clients"])
        assert m["source"]["commit"] == "f891d11" and m["license"] == "Apache-2.0"
        assert m["category"] + "/" + m["model"] == m["name"]
    metas[0]["name"] = "changed"  # callers get copies
    assert list_profiles()[0]["name"] == "language/m-large"


def test_loads_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _profiles._index.cache_clear()
    _profiles._load.cache_clear()
    try:
        p = load_profile("reason/deepseek-r1")
    finally:
        _profiles._index.cache_clear()
        _profiles._load.cache_clear()
    assert p.name == "reason/deepseek-r1" and p.rate.shape == (73, 144)


def test_cached_short_name_and_read_only():
    p = load_profile("language/m-small")
    assert load_profile("m-small") is p
    with pytest.raises(ValueError, match="read-only"):
        p.rate[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        p.tables[0].probs[0] = 1.0


@pytest.mark.parametrize("name", ["m-huge", "language/m-large/", "", "LANGUAGE/M-LARGE"])
def test_unknown_pool_lists_valid_names(name):
    with pytest.raises(ValueError, match=r"unknown pool .*valid names: \['language/m-large'"):
        load_profile(name)


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.slow
def test_shapes_dtypes_and_invariants(name):
    p = load_profile(name)
    n_c, n_w, n_d, fields, n_imp = EXPECTED[name]
    assert p.fields == fields and p.meta["name"] == name
    assert p.client_ids.dtype == np.int64 and p.client_ids.shape == (n_c,)
    assert np.all(np.diff(p.client_ids) > 0)
    assert np.array_equal(p.window_start, 600 * np.arange(n_w))
    assert np.array_equal(p.length_window_start, 21600 * np.arange(n_d))
    for arr in (p.rate, p.cv, p.shape, p.scale):
        assert arr.dtype == np.float32 and arr.shape == (n_c, n_w)
        assert np.all(np.isfinite(arr)) and np.all(arr >= 0)
    assert p.law.dtype == np.uint8 and p.law.shape == (n_c, n_w) and set(np.unique(p.law)) <= {0, 1, 2}
    assert np.array_equal(p.law == 0, p.rate == 0)
    assert np.all((p.shape > 0) == (p.law > 0)) and np.all((p.scale > 0) == (p.law > 0))
    assert p.imputed.dtype == np.bool_ and p.imputed.shape == (n_c,) and p.imputed.sum() == n_imp
    assert p.length_source.dtype == np.uint8 and p.length_source.shape == (n_c, n_d)
    assert np.all(p.length_source[p.imputed] == _pmf.SOURCE_IMPUTED)
    assert p.pmf_id.dtype == np.int32 and p.pmf_id.shape == (n_c, n_d, len(fields))
    assert np.array_equal(
        p.pmf_id < 0, np.repeat((p.length_source == _pmf.SOURCE_NONE)[..., None], len(fields), 2)
    )
    # A client with no length data in a 6 h window sends nothing in it.
    silent = (p.length_source == _pmf.SOURCE_NONE).repeat(36, axis=1)[:, :n_w]
    assert np.all(p.rate[silent] == 0)
    for f, t in zip(fields, p.tables, strict=True):
        n_pmf = t.offsets.size - 1
        assert t.offsets.dtype == np.int64 and t.offsets[0] == 0 and np.all(np.diff(t.offsets) > 0)
        assert p.pmf_id[..., fields.index(f)].max() == n_pmf - 1
        assert t.values.dtype == (np.float64 if f == "reason_ratio" else np.int64)
        assert t.probs.dtype == t.cdf.dtype == np.float64 and t.values.shape == t.probs.shape == t.cdf.shape
        assert np.all(t.probs > 0)
        assert np.all(t.cdf[t.offsets[1:] - 1] == 1.0)  # exact: counts / 2**bits
        starts = np.zeros(t.values.size, dtype=bool)
        starts[t.offsets[:-1]] = True
        assert np.all((np.diff(t.values) > 0) | starts[1:])  # strictly increasing per PMF
        assert np.all(t.values >= 0) and (f != "reason_ratio" or np.all(t.values <= 1))
        for stat in (t.mean, t.p50, t.p99):
            assert stat.shape == (n_pmf,) and np.all(np.isfinite(stat))
        s = p.length_stats(f)
        assert np.array_equal(np.isnan(s["mean"]), p.length_source == _pmf.SOURCE_NONE)
        ok = ~np.isnan(s["p50"])
        assert np.all(s["p50"][ok] <= s["p99"][ok])


def test_pmf_accessor():
    p = load_profile("reason/deepseek-r1")
    c, d = np.argwhere(p.length_source == _pmf.SOURCE_RELEASE)[0]
    v, pr = p.pmf(c, d, "output_tokens")
    assert v.size > 0 and np.isclose(pr.sum(), 1.0)
    assert np.isclose((v * pr).sum(), p.length_stats("output_tokens")["mean"][c, d])
    c, d = np.argwhere(p.length_source == _pmf.SOURCE_NONE)[0]
    assert p.pmf(c, d, "reason_ratio")[0].size == 0
    with pytest.raises(ValueError, match="field must be one of"):
        p.pmf(0, 0, "image_tokens")


@pytest.mark.slow
def test_imputed_clients_are_the_missing_files(release_zip, release):
    # the real release's list, or the stand-in's (tests/_synthetic.py), both beside the zip
    missing = (release_zip.path.parent / "ServeGen-main.MISSING.txt").read_text().split()
    expected: dict[str, set[int]] = {name: set() for name in EXPECTED}
    for line in missing:
        parts = line.split("/")  # ServeGen-main/data/<category>/<model>/chunk-<id>-dataset.json
        expected["/".join(parts[2:4])].add(int(parts[4].split("-")[1]))
    assert len(missing) == 55
    assert {k: len(v) for k, v in expected.items()} == {k: e[4] for k, e in EXPECTED.items()}
    for name, ids in expected.items():
        p = load_profile(name)
        assert set(p.client_ids[p.imputed].tolist()) == ids
        raw = release[name]  # and the reader finds the same files missing
        assert set(raw.client_ids[~raw.has_dataset].tolist()) == ids


# --------------------------------------------------------------------------- fidelity


@pytest.fixture(scope="module")
def release(release_zip) -> dict[str, RawPool]:
    """Every pool parsed once from the release zip (a few seconds), or from its stand-in
    (tests/_synthetic.py: the language pools' first 6 hours only, so profiles are compared
    over the raw pool's windows)."""
    return {name: read_pool(release_zip.path, name) for name in POOLS}


@pytest.mark.slow  # the release fixture parses the whole upstream zip (~10 s of CPU)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_arrivals_equal_release_as_float32(release, name):
    raw, p = release[name], load_profile(name)
    n_win = raw.window_start.size  # all of the profile's, except in the stand-in
    assert np.array_equal(p.client_ids, raw.client_ids)
    assert np.array_equal(p.law[:, :n_win], raw.law)
    for attr in ("rate", "cv", "shape", "scale"):
        assert np.array_equal(getattr(p, attr)[:, :n_win], getattr(raw, attr).astype(np.float32)), attr
    assert np.array_equal(p.imputed, ~raw.has_dataset)


@pytest.mark.slow  # the release fixture parses the whole upstream zip (~10 s of CPU)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_length_pmfs_close_to_release(release, name):
    """Every client-window-field PMF: KS <= 0.01, mean within 1 %, p50 5 %, p99 3 % of the
    release's (of the rate-weighted mixture for imputed ones)."""
    raw, p = release[name], load_profile(name)
    source, mixture = _pmf.impute(raw)
    n_len = raw.length_window_start.size  # all of the profile's, except in the stand-in
    assert np.array_equal(p.length_source[:, :n_len], source)
    for f, field in enumerate(raw.fields):
        exact, row = _pmf.field_table(raw, source, mixture, field)
        ids = p.pmf_id[:, :n_len, f].astype(np.int64)
        assert np.array_equal(ids < 0, row < 0)
        by_row = np.full(exact[0].size - 1, -1)
        by_row[row[row >= 0]] = ids[row >= 0]
        assert np.array_equal(by_row[row[row >= 0]], ids[row >= 0])  # shared mixtures share an id
        t = p.table(field)
        offsets = np.append(t.offsets, t.offsets[-1])  # an empty PMF for rows nobody uses
        approx = _pmf.take(offsets, np.where(by_row < 0, offsets.size - 2, by_row), t.values, t.probs)
        fid = _pmf.fidelity(exact, approx)
        used = by_row >= 0
        assert not np.isnan(fid["ks"][used]).any()
        for key, limit in (
            ("ks", KS_MAX),
            ("mean", MEAN_REL_MAX),
            ("p50", P50_REL_MAX),
            ("p99", P99_REL_MAX),
        ):
            worst = fid[key][used].max()
            assert worst <= limit, f"{name} {field}: worst {key} {worst:.4g} > {limit}"


# --------------------------------------------------------------------------- PMF helpers


def _random_table(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sizes = rng.integers(0, 8, size=n)
    vals, probs = [], []
    for k in sizes:
        v = np.sort(rng.choice(20, size=k, replace=False)).astype(float)
        p = rng.random(k) * (rng.random(k) > 0.2)
        if k and p.sum() == 0:
            p[0] = 1.0
        vals.append(v)
        probs.append(p / p.sum() if k else p)
    return np.concatenate(([0], np.cumsum(sizes))), np.concatenate(vals), np.concatenate(probs)


def test_ks_and_stats_match_brute_force():
    rng = np.random.default_rng(7)
    a, b = _random_table(rng, 300), _random_table(rng, 300)
    ks = _pmf.ks_distance(a, b)
    mean, q = _pmf.stats(*a, quantiles=(0.1, 0.5, 0.99))
    for k in range(300):
        va, pa = (x[a[0][k] : a[0][k + 1]] for x in a[1:])
        vb, pb = (x[b[0][k] : b[0][k + 1]] for x in b[1:])
        if va.size == 0:
            assert np.isnan(mean[k]) and np.isnan(ks[k])
            continue
        assert mean[k] == pytest.approx((va * pa).sum())
        for j, level in enumerate((0.1, 0.5, 0.99)):
            assert q[k, j] == va[np.argmax(np.cumsum(pa) >= level - 1e-9)]
        if vb.size:
            x = np.union1d(va, vb)
            fa = np.array([pa[va <= t].sum() for t in x])
            fb = np.array([pb[vb <= t].sum() for t in x])
            assert ks[k] == pytest.approx(np.abs(fa - fb).max(), abs=1e-12)


def test_compact_and_quantize_keep_guarantees():
    # A smooth log-normal-like PMF and one with a tiny mass far out (it needs > 16 bits).
    v1 = np.arange(1, 50001, dtype=float)
    p1 = np.exp(-((np.log(v1) - 6) ** 2) / 2) / v1
    v2 = np.array([1.0, 8192.0])
    p2 = np.array([1 - 6.5e-6, 6.5e-6])
    exact = (
        np.array([0, v1.size, v1.size + 2]),
        np.concatenate((v1, v2)),
        np.concatenate((p1 / p1.sum(), p2)),
    )
    co, cv, cp = _pmf.compact(*exact, integer=True)
    assert co[1] < 1000  # 50000 points -> a few hundred bins
    bits = _pmf.scale_bits(co, cv, cp)
    assert bits[0] == 16 and bits[1] > 16
    counts = _pmf.quantize(co, cp, bits)
    assert [counts[co[k] : co[k + 1]].sum() for k in range(2)] == [2 ** int(b) for b in bits]
    fid = _pmf.fidelity(exact, (co, cv, counts.astype(float)))
    assert fid["ks"].max() <= 0.0075 and fid["mean"].max() < 0.002
    assert fid["p50"].max() < 0.02 and fid["p99"].max() < 0.02


def test_impute_is_rate_weighted_mixture(tmp_path):
    rows = {0: _trace(rate=1.0), 1: _trace(rate=3.0), 2: _trace(rate=0.5)}
    datasets = {0: {"0": {"input_tokens": "{10: 1.0}"}}, 1: {"0": {"input_tokens": "{20: 0.5, 30: 0.5}"}}}
    raw = read_pool(_release_dir(tmp_path, rows, datasets), "language/m-test")
    source, mixture = _pmf.impute(raw)
    assert source.tolist() == [[_pmf.SOURCE_RELEASE], [_pmf.SOURCE_RELEASE], [_pmf.SOURCE_IMPUTED]]
    table, row = _pmf.field_table(raw, source, mixture, "input_tokens")
    k = row[2, 0]
    v, p = (x[table[0][k] : table[0][k + 1]] for x in table[1:])
    assert v.tolist() == [10, 20, 30] and np.allclose(p, [0.25, 0.375, 0.375])


# --------------------------------------------------------------------------- parser


def _trace(rate: float = 0.5, n: int = 36) -> list[str]:
    law = "Gamma,0.5,4.0" if rate > 0 else ",0,0"
    return [f"{600 * i},{rate},1.4,{law}" for i in range(n)]


def _release_dir(
    root: Path, traces: dict[int, list[str]], datasets: dict[int, object], pool: str = "language/m-test"
) -> Path:
    folder = root / "ServeGen-main" / "data" / pool
    folder.mkdir(parents=True, exist_ok=True)
    for c, lines in traces.items():
        (folder / f"chunk-{c}-trace.csv").write_text("\n".join(lines) + "\n")
    for c, doc in datasets.items():
        text = doc if isinstance(doc, str) else json.dumps(doc)
        (folder / f"chunk-{c}-dataset.json").write_text(text)
    return root


GOOD_DATASET = {"0": {"input_tokens": "{3: 0.25, 1: 0.75}", "output_tokens": "{7: 1.0}"}}


def test_parses_a_small_release_from_dir_and_zip(tmp_path):
    root = _release_dir(tmp_path, {4: _trace(), 1: _trace(0.0)}, {4: GOOD_DATASET})
    raw = read_pool(root, "language/m-test")
    assert raw.client_ids.tolist() == [1, 4] and raw.has_dataset.tolist() == [False, True]
    assert raw.rate.shape == (2, 36) and raw.law[1].tolist() == [1] * 36 and raw.law[0].tolist() == [0] * 36
    assert raw.fields == ("input_tokens", "output_tokens")
    assert raw.pmf(1, 0, "input_tokens")[0].tolist() == [1.0, 3.0]  # sorted by value
    assert raw.pmf(1, 0, "input_tokens")[1].tolist() == [0.75, 0.25]
    assert raw.pmf(0, 0, "output_tokens")[0].size == 0
    assert np.array_equal(read_pool(root / "ServeGen-main", "language/m-test").pmf_values, raw.pmf_values)
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((root / "ServeGen-main").rglob("*")):
            zf.write(path, path.relative_to(root).as_posix())
    from_zip = read_pool(archive, "language/m-test")
    assert np.array_equal(from_zip.rate, raw.rate) and np.array_equal(from_zip.pmf_probs, raw.pmf_probs)
    with pytest.raises(
        ValueError, match=r"pool 'language/m-nope' not found; pools present: \['language/m-test'\]"
    ):
        read_pool(archive, "language/m-nope")
    with pytest.raises(ValueError, match="not found"):
        read_pool(root, "language/m-nope")


def _bad_trace(line: int, text: str) -> list[str]:
    rows = _trace()
    rows[line - 1] = text
    return rows


TRACE_ERRORS = [
    # (line, row text, expected message fragment)
    (4, "1800,0.5,1.4,Gamma", r"line 4: expected 6 comma-separated fields"),
    (
        3,
        "1200,0.5,1.4,Lognormal,0.5,4.0",
        r"line 3: law must be one of \['Gamma', 'Weibull'\] or empty, got 'Lognormal'",
    ),
    (2, "600,-0.5,1.4,Gamma,0.5,4.0", r"line 2: rate_rps must be >= 0, got -0.5"),
    (5, "2400,nan,1.4,Gamma,0.5,4.0", r"line 5: rate_rps must be finite"),
    (6, "3000,0.5,1.4,Gamma,abc,4.0", r"line 6: arg1 must be a number, got 'abc'"),
    (7, "3600,0.5,1.4,Weibull,0.5,0", r"line 7: arg2 \(scale\) must be > 0 when a law is given"),
    (8, "4800,0.5,1.4,Gamma,0.5,4.0", r"line 8: window_start_s must be 600 \* \(line - 1\)"),
    (9, "4800,0.5,1.4,,0,0", r"line 9: law must be given when rate_rps > 0"),
]


@pytest.mark.parametrize(("line", "text", "message"), TRACE_ERRORS)
def test_corrupt_trace_names_file_and_line(tmp_path, line, text, message):
    root = _release_dir(tmp_path, {3: _bad_trace(line, text)}, {})
    with pytest.raises(ValueError, match=message) as info:
        read_pool(root, "language/m-test")
    assert "chunk-3-trace.csv" in str(info.value)


DATASET_ERRORS = [
    ("{1: 0.5, 2 0.5}", r"malformed dict literal .*at character 9: '2 0.5}'"),
    ("{1: 0.5, 2: 0.4}", r"probabilities must sum to 1 \(within 1e-06\), got 0.9"),
    ("{1: 0.5, 2: nan}", r"probability must be finite, got nan \(value 2.0\)"),
    ("{1: 1.5, 2: -0.5}", r"probability must be >= 0, got -0.5 \(value 2.0\)"),
    ("{1.5: 1.0}", r"value must be a non-negative integer, got 1.5"),
    ("{1: 0.5, 1: 0.5}", r"value 1.0 appears twice"),
    ("{__import__('os'): 1}", r"malformed dict literal"),
    (7, r"must be a string holding a dict literal"),
]


@pytest.mark.parametrize(("literal", "message"), DATASET_ERRORS)
def test_corrupt_dataset_names_file_window_and_field(tmp_path, literal, message):
    doc = {"0": {"input_tokens": "{1: 1.0}", "output_tokens": literal}}
    root = _release_dir(tmp_path, {5: _trace()}, {5: doc})
    with pytest.raises(ValueError, match=message) as info:
        read_pool(root, "language/m-test")
    assert "chunk-5-dataset.json, window '0', field 'output_tokens'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"0": {"input_tokens": "{1: 1.0}"', r"not valid JSON"),
        ('{"300": {"input_tokens": "{1: 1.0}"}}', r"window '300': window start must be a multiple of 21600"),
        ('{"21600": {"input_tokens": "{1: 1.0}"}}', r"below 21600 \(the trace span\)"),
        ('{"0": {"input_tokens": "{}", "output_tokens": "{1: 1.0}"}}', r"some fields are empty"),
    ],
)
def test_corrupt_dataset_structure(tmp_path, text, message):
    root = _release_dir(tmp_path, {2: _trace()}, {2: text})
    with pytest.raises(ValueError, match=message) as info:
        read_pool(root, "language/m-test")
    assert "chunk-2-dataset.json" in str(info.value)


def test_fields_must_agree_across_files(tmp_path):
    root = _release_dir(
        tmp_path, {1: _trace(), 2: _trace()}, {1: GOOD_DATASET, 2: {"0": {"input_tokens": "{1: 1.0}"}}}
    )
    with pytest.raises(
        ValueError,
        match=r"chunk-2-dataset.json, window '0': fields must be \['input_tokens', 'output_tokens'\]",
    ):
        read_pool(root, "language/m-test")
