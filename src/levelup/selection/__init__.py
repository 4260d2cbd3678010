"""Choosing which geometries of a pool get the expensive level of theory (issue 14).

:func:`levelup.selection.select.select` (``levelup.select``) picks K geometries by one of four
strategies: every k-th (:mod:`levelup.selection.strategies`), random with a seed, farthest
points in AEV space (:mod:`levelup.selection.descriptors`), or query by committee: an
active-learning loop that labels at the high level where a committee of transferred models
disagrees most (:mod:`levelup.selection.committee`).
"""
