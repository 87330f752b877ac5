"""Choosing the next list: the feasible-set sampler (`sampler`), the hvi sampler's Gaussian process (`surrogate`),
what a study trades accuracy against (`costs`) and the derived Pareto study over those costs (`pareto`)."""
