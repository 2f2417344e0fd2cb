"""Every benchmark and evaluation: synthetic and real-data accuracy, consumer checks, speed against references."""
