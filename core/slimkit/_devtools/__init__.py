"""Tools for slimkit's developers (not part of the public API): ``python -m slimkit._devtools.<tool>``."""
