"""File formats: the native HDF5 database and ASE's formats."""
