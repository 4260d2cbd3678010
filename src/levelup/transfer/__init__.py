"""Transfer learning: surgery (freeze, add, replace), priors, the recipes, delta-learning."""
