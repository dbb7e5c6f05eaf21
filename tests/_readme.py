"""The README's two example clients, shared by the tests that exercise them."""

import servegen as sg


def readme_clients() -> dict[str, sg.Client]:
    """``{"chat": ..., "batch": ...}`` exactly as README.md's quick start builds them."""
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
    return {"chat": chat, "batch": batch}
