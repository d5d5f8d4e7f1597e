"""Training-data generation for the detectors: fakes made from real faces."""
