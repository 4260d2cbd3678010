"""Ready-made studies (the H2 tutorial) built from the public API."""
