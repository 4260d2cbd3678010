"""Published models: the NeuroChem reader and the ANI-1x catalogue."""
