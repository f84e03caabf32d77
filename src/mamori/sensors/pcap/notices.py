"""What a capture holds that ingest reads but cannot fully analyse, said once per capture.

Reading never stops for these: a packet of a link type the decoder does not know is counted and
its connection-less row skipped; a packet cut short by the capture's snaplen is decoded as far as
its bytes go (its missing payload is a gap to the reassembler, ``missed_bytes`` in conn). But a
user whose records look thin must be told why, as for a truncated or corrupt file (``reader``):
one line naming the file, the first record concerned, the reason and how many packets it touched.

Counted per batch in columns (two comparisons over the batch), not per packet in Python.
"""

from __future__ import annotations

import numpy as np

from mamori.sensors.pcap.decode import DECODED_LINKTYPES
from mamori.sensors.pcap.reader import CaptureProblem, RecordBatch

_DECODED = np.array(sorted(DECODED_LINKTYPES), np.int32)

# Names of link types captures commonly carry that the decoder does not (tcpdump's LINKTYPE_*).
LINKTYPE_NAMES = {
    6: "IEEE802_5 (Token Ring)",
    105: "IEEE802_11 (Wi-Fi)",
    119: "PRISM_HEADER (Wi-Fi)",
    127: "IEEE802_11_RADIOTAP (Wi-Fi)",
    147: "USER0",
    189: "USB_LINUX",
    195: "IEEE802_15_4_WITHFCS",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR",
    215: "IEEE802_15_4_NONASK_PHY",
    220: "USB_LINUX_MMAPPED",
    249: "NETLINK",
}


def linktype_name(linktype: int) -> str:
    name = LINKTYPE_NAMES.get(linktype)
    return f"link type {linktype}" + (f" ({name})" if name else "")


class CaptureNotices:
    """Counts, over a capture's batches, the packets of undecoded link types and the packets
    cut short by the snaplen, remembering the first record of each kind."""

    def __init__(self) -> None:
        self.unknown: dict[int, list[int]] = {}  # link type -> [packets, first record]
        self.cut = 0
        self.first_cut: tuple[int, int, int] | None = None  # record, bytes kept, bytes on the wire

    def observe(self, batch: RecordBatch) -> None:
        lt = batch.linktype
        n = lt.shape[0]
        if n == 0:
            return
        low, high = int(lt.min()), int(lt.max())
        if low == high:  # one link type in the batch (every classic capture): one look-up
            if low not in DECODED_LINKTYPES:
                self._unknown(low, n, 0, batch)
        else:
            undecoded = ~np.isin(lt, _DECODED)
            if undecoded.any():
                rows = np.flatnonzero(undecoded)
                kinds, first, counts = np.unique(lt[rows], return_index=True, return_counts=True)
                for k, f, c in zip(kinds.tolist(), first.tolist(), counts.tolist(), strict=True):
                    self._unknown(k, c, int(rows[f]), batch)
        cut = batch.caplen < batch.wirelen
        count = int(np.count_nonzero(cut))
        if count:
            if self.first_cut is None:
                at = int(np.argmax(cut))
                self.first_cut = (
                    batch.first_record + at + 1,
                    int(batch.caplen[at]),
                    int(batch.wirelen[at]),
                )
            self.cut += count

    def _unknown(self, linktype: int, count: int, at: int, batch: RecordBatch) -> None:
        got = self.unknown.get(linktype)
        if got is None:
            self.unknown[linktype] = [count, batch.first_record + at + 1]
        else:
            got[0] += count

    def problems(self, path: str) -> list[CaptureProblem]:
        """One line per undecoded link type, then one for the snaplen's cuts (record order)."""
        out = [
            CaptureProblem(
                path,
                first,
                f"{linktype_name(linktype)} is not one mamori decodes: its {count:,} packet(s)"
                " are counted, not analysed",
            )
            for linktype, (count, first) in self.unknown.items()
        ]
        if self.first_cut is not None:
            record, kept, wire = self.first_cut
            out.append(
                CaptureProblem(
                    path,
                    record,
                    f"{self.cut:,} packet(s) cut short by the capture's snaplen (this one: {kept}"
                    f" of {wire} bytes captured): the bytes past a cut were never captured, so"
                    " payload analysis sees gaps (conn's missed_bytes) and a packet cut inside"
                    " its headers is not analysed",
                )
            )
        return sorted(out, key=lambda p: p.record)
