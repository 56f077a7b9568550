"""Reducing Partials within the memory budget: the reducer, the spill to disk, its cleanup."""
