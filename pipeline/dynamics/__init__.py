"""Signal and perturbation propagation through random-network ensembles, and its statistics."""
