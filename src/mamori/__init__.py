"""mamori (守り): active cyber defence for the networks its users own.

Data flows one way: sensors → lake → detect → alerts → correlate → incidents → respond / cases / share.
See docs/architecture.md for the contracts between stages.
"""

__version__ = "0.1.0"
