"""models: what the integrations for your own models (PyTorch, JAX) share: members and their checks, the decay audit, the decay monitor's summary and page, model factories, the sweep of a model."""
