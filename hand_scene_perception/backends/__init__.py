"""Hand experts behind one protocol (base.py), listed by name in registry.py: the embedded MediaPipe hands now,
learned networks (models/, once they land) later."""
