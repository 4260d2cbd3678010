"""Geometry pools a chemist would make by exploring a potential: Langevin dynamics at a
temperature (:mod:`levelup.explore.dynamics`), an NVE energy-conservation check
(:mod:`levelup.explore.nve`), and nudged-elastic-band paths with distortions around them
(:mod:`levelup.explore.paths`), each driven by a levelup model or by a level of theory through
PySCF (:mod:`levelup.explore.sources`). Coordinates in Angstrom, energies in Hartree, times in
femtoseconds.
"""
