"""``auxrun tune``: budget-matched hyper-parameter search per strategy, on validation only
(:mod:`.study`), over the search spaces the configs declare (:mod:`.space`)."""
