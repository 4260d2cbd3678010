"""Studies: the study-file schema, the runner, its step cache and its outputs."""
