"""Generate one hour of a two-client workload and print a summary.

Run: python examples/quickstart.py
"""

import servegen as sg

chat = sg.Client(
    arrival=sg.Gamma(rate=4.0, cv=2.5),
    input_tokens=sg.Mixture(
        [sg.Pareto(alpha=1.8, xmin=400), sg.LogNormal(mu=5.5, sigma=0.9)], weights=[0.3, 0.7]
    ),
    output_tokens=sg.Exponential(mean=250),
)
batch = sg.Client(
    arrival=sg.Weibull(rate=1.0, cv=6.0),
    input_tokens=sg.Empirical(values=[128, 512, 2048], probs=[0.2, 0.5, 0.3]),
    output_tokens=sg.Clipped(sg.LogNormal(mu=6, sigma=1), low=1, high=8192),
)

if __name__ == "__main__":  # the tests import the two clients (tests/_readme.py)
    wl = sg.Workload({"chat": chat, "batch": batch}, rate=50.0)
    reqs = wl.sample(duration=3600, rng=7)
    df = reqs.to_pandas()
    print(reqs)
    print(f"rate: {len(reqs) / 3600:.2f} req/s")
    print(df.groupby("client", observed=True)[["input_tokens", "output_tokens"]].describe().T.round(1))
