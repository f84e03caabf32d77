"""Peer: NFStream (nDPI) flow export, counted.

Usage: python benchmarks/peers/nfstream_flows.py CAPTURE  -> prints the number of flows.
"""

from __future__ import annotations

import sys

from nfstream import NFStreamer

if __name__ == "__main__":
    streamer = NFStreamer(source=sys.argv[1], statistical_analysis=False)
    print(sum(1 for _ in streamer))
