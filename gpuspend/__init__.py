"""gpuspend: live GPU cost, idle waste and projected burn."""

__version__ = "0.1.0"
