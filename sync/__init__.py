"""The domain: canonical model, mappings, journeys, engine, accounting."""
