"""core: the network, the penalties, the update (the optax chain and λ/n), the engine, the decay and data terms."""
