"""Properties chemists check on a potential: Hessians and normal modes (of a model or a level)."""
