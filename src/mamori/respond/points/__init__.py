"""Enforcement points, one module each; importing this package registers them."""

from mamori.respond import notify  # noqa: F401  (abuse notices, the notify action)
from mamori.respond.points import (
    blocklist,  # noqa: F401
    crowdsec,  # noqa: F401
    exabgp,  # noqa: F401
    nftables,  # noqa: F401
    rpz,  # noqa: F401
)
