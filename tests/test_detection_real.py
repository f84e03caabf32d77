"""Detection on real labelled captures: each covered attack is found with the right technique,
and Zeek's benign test traces raise no incident (docs/detection.md)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mamori.correlate.incidents import Incident, correlate
from mamori.detect.engine import run_detectors
from support.golden import capture_frames

# capture -> (ATT&CK technique the incident must carry, victim or attacker it must name)
COVERED = {
    "zeek-btest/Traces/ssh/sshguess.pcap": ("T1110.001", "192.168.56.1"),
    "pcaps-esnet-scanners/attacks/scanners/masscan/tcp_0_1000_20190821.pcap": (
        "T1046",
        "172.31.15.102",
    ),
    "pcaps-ddos-stopddos/pkt.TCP.synflood.spoofed.pcap": ("T1498.001", "10.10.10.10"),
    "pcaps-ddos-stopddos/amp.dns.RRSIG.fragmented.pcap": ("T1498.002", "10.10.10.10"),
    "pcaps-ddos-stopddos/amp.UDP.snmp.src161.pcapng": ("T1498.002", "10.10.10.10"),
    "pcaps-ddos-stopddos/amp.TCP.reflection.SYNACK.pcap": ("T1498.002", "10.10.10.10"),
    "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/sandcat.pcap": (
        "T1071.001",
        "172.18.0.3",
    ),
    "zeek-detector-pcaps/zeek-agenttesla-detector/testing/Traces/f9421792-7d2c-47d3-90e0-07eb54ae12fa.pcap": (
        "T1552",
        "192.168.100.164",
    ),
    "evtx-attack-samples/Command and Control/cmds over dns txt queries and reponses.pcap": (
        "T1071.004",
        "192.168.100.121",
    ),
    # AsyncRAT and DcRAT by their default server certificates (fingerprint.known), the same
    # infected host and C2 server as Corelight's AsyncRAT::C2_Traffic_Observed notices.
    "zeek-detector-pcaps/zeek-asyncrat-detector/testing/Traces/cd010953-5faf-4054-86be-58c020c3a532.pcap": (
        "T1573.002",
        "181.131.218.39",
    ),
    "zeek-detector-pcaps/zeek-asyncrat-detector/testing/Traces/30a385ed-171e-4f15-ac3f-08c96be7bfd1.pcap": (
        "T1573.002",
        "186.169.47.11",
    ),
    # Session 18's detectors. DVWA's SQL injection, by its requests (web.attack).
    "zeek-btest/Traces/http/cooper-grill-dvwa.pcapng": ("T1190", "192.168.111.148"),
    # nmap -p80 (a SYN scan): answered probes reset before a byte, on 80 and 443 (scan.half_open).
    "pcaps-esnet-scanners/attacks/scanners/nmap/nmap_80_vanilla.pcap": ("T1046", "10.87.1.10"),
    # nmap -p80 -A: its scripting engine names itself in every HTTP probe (scan.tools).
    "pcaps-esnet-scanners/attacks/scanners/nmap/nmap_80_all.pcap": ("T1046", "10.87.1.10"),
    # AgentTesla mailing its password report: the PW_<user>/<computer> subject (stealer_mail).
    "zeek-detector-pcaps/zeek-agenttesla-detector/testing/Traces/db9f075c-7879-4957-923a-f79fac957a2d.pcap": (
        "T1048.003",
        "192.168.100.122",
    ),
    # AgentTesla posting its loot over HTTP with Firefox's name and .NET's handshake (fake_browser),
    # the same connection as Corelight's AgentTesla::C2_Traffic_Observed notice.
    "zeek-detector-pcaps/zeek-agenttesla-detector/testing/Traces/0e328ab7-12b2-4843-8717-a5b3ebef33a8.pcap": (
        "T1041",
        "78.41.139.12",
    ),
    # Caldera's Manx agent fetched with curl before its TCP C2 starts (transfer.executable), as
    # the Caldera package's SuspiciousFileDownload notice; the C2 session itself is not told.
    "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/manx-tcp.pcap": (
        "T1105",
        "172.18.0.3",
    ),
    # Merlin over HTTP/3: a nameless QUIC session held for minutes (c2.quic_no_name), its
    # handshake read from the QUIC Initial packets.
    "zeek-btest/Traces/quic/merlinc2_Zeek_example.pcapng": ("T1071.001", "24.199.110.233"),
    # The PE download, by wget over anonymous FTP (transfer.executable).
    "zeek-btest/Traces/pe/pe.pcap": ("T1105", "192.168.1.31"),
}


def _incidents(capture: Path) -> list[Incident]:
    run = run_detectors(capture_frames(capture))
    assert not run.failed, run.failed
    return correlate(run.alerts)


@pytest.mark.parametrize("capture", sorted(COVERED))
def test_labelled_attack_is_found(data_dir: Path, capture: str) -> None:
    technique, host = COVERED[capture]
    incidents = _incidents(data_dir / capture)
    hits = [i for i in incidents if technique in i.techniques]
    assert hits, f"{capture}: no incident with {technique}; got {[i.title for i in incidents]}"
    assert any(host in i.attackers + i.victims for i in hits)


def test_benign_zeek_traces_raise_no_incident(data_dir: Path) -> None:
    """The goal is no high or critical incident on Zeek's normal-traffic traces; every detector
    registered today (exfiltration and fingerprint lists included) raises none at all, and any
    new one must keep it so or say here why not."""
    with (data_dir / "MANIFEST.tsv").open(newline="") as fh:
        benign = [
            r[0] for r in csv.reader(fh, delimiter="\t")
            if len(r) >= 4 and r[0].startswith("zeek-btest/") and r[0].endswith((".pcap", ".pcapng"))
            and r[3].startswith("benign")
        ]  # fmt: skip
    assert len(benign) > 50
    loud = {}
    for capture in benign:
        found = [f"{i.severity}: {i.title}" for i in _incidents(data_dir / capture)]
        if found:
            loud[capture] = found
    assert not loud, loud
