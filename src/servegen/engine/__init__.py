"""The sampling engine: what turns compiled models into a sorted request stream.

It sits below the models' façades (``ArrivalProcess.sample``, ``Client.sample`` and
``Workload.sample`` call down into it) and imports none of them, nor pools or formats:

- :mod:`~servegen.engine.kernels`: compiled arrival pieces, gap draws, stationary
  residuals, renewal points, and the law table (:func:`~servegen.engine.kernels.law`);
- :mod:`~servegen.engine.timeline`: every client's effective rate and law over time
  (rate targets), one block of stream windows at a time;
- :mod:`~servegen.engine.plan`: one sample call's plan, the window loop and the session
  state carried across windows; clients are used through duck-typed hooks
  (:class:`~servegen.engine.plan.ClientLike`);
- :mod:`~servegen.engine.merge`: merging runs, windows, chunks and parts.
"""
