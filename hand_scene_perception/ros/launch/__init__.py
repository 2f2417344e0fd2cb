"""Launch wiring in plain Python (the plan both launch files and `hand-scene launch` use), its runner and actions."""
