"""The ANI model: AEV, element networks, ensembles, self energies, prediction, model files."""
