"""fronts: prepare, cross-validation and the one sweep orchestration, train, sweep, explain, convert, reproduce, Ray."""
