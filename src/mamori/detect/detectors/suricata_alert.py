"""Suricata's alerts as mamori alerts: one per signature, source and destination in a window.

A Suricata deployment already decided that traffic matched a rule; mamori's part is to group the
repeats (a scanner trips the same signature thousands of times), grade them, name the ATT&CK
techniques and put them into incidents beside its own detections, with the EVE records as
evidence.

Severity is Suricata's rule priority: 1 -> high, 2 -> medium, 3 and 4 -> low (the group's most
severe alert decides). Techniques come from the rule's metadata where it carries them (ET rules
write ``mitre_technique_id``; ``mitre_tactic_id`` alone names no technique and is not used);
otherwise from the rule's classification (EVE's ``category``, the text of classification.config)
through :data:`CATEGORY_TECHNIQUES`. Classifications that say nothing about the adversary's
behaviour ("Potentially Bad Traffic", "Misc activity", policy violations) map to none: the alert
stands without a technique rather than with a guessed one.

An alert's ``src`` is the attacker and ``dst`` the victim, which the packet's direction does not
say: a rule that matches a server's reply ("id check returned root") fires on a packet from the
victim. Rules written with Suricata's ``target:`` keyword name the sides, and where they do, those
are the alert's ``src`` and ``dst``; otherwise the packet's source and destination stand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "suricata.alert"
KEY = ("signature_id", "src_ip", "dest_ip")

# Suricata's classification.config descriptions (as EVE's ``alert.category`` spells them, compared
# case-insensitively) -> ATT&CK techniques, where the class says what the adversary did.
CATEGORY_TECHNIQUES: dict[str, tuple[str, ...]] = {
    "a network trojan was detected": ("T1071",),  # trojan-activity: C2 over app protocols
    "malware command and control activity detected": ("T1071",),  # command-and-control
    "domain observed used for c2 detected": ("T1071.004",),  # domain-c2 (DNS)
    "exploit kit activity detected": ("T1189",),  # exploit-kit: drive-by compromise
    "web application attack": ("T1190",),  # web-application-attack
    "attempted administrator privilege gain": ("T1190",),  # remote exploits of services
    "successful administrator privilege gain": ("T1190",),
    "attempted user privilege gain": ("T1190",),
    "successful user privilege gain": ("T1190",),
    "executable code was detected": ("T1203",),  # shellcode-detect
    "attempted denial of service": ("T1498",),
    "denial of service": ("T1498",),
    "detection of a denial of service attack": ("T1498",),
    "detection of a network scan": ("T1046",),  # network-scan
    "attempted information leak": ("T1595",),  # attempted-recon
    "information leak": ("T1595",),  # successful-recon-limited
    "large scale information leak": ("T1595",),  # successful-recon-largescale
    "decode of an rpc query": ("T1046",),  # rpc-portmap-decode
    "crypto currency mining activity detected": ("T1496",),  # coin-mining
    "possible social engineering attempted": ("T1566",),  # social-engineering
    "device retrieving external ip address detected": ("T1016",),  # external-ip-check
    "an attempted login using a suspicious username was detected": ("T1110",),
    "attempt to login by a default username and password": ("T1078.001",),
}
_SEVERITY = {1: "high", 2: "medium"}  # 3, 4 and unknown: low
# What the detector can report from classifications; rule metadata may name any other technique.
ATTACK: tuple[str, ...] = tuple(sorted({t for ts in CATEGORY_TECHNIQUES.values() for t in ts}))


@dataclass(frozen=True)
class SuricataAlertParams(Params):
    # Alerts of one signature between the same two hosts within this many minutes are one
    # mamori alert (the engine's suppression merges consecutive windows further).
    window_minutes: float = 60.0
    # Confidence per EVE severity (1 = the rule writer's most certain) and for the rest.
    confidence_high: float = 0.8
    confidence_medium: float = 0.6
    confidence_low: float = 0.4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_minutes <= 0:
            raise ValueError("window_minutes must be positive")
        for name in ("confidence_high", "confidence_medium", "confidence_low"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")


def _metadata_techniques() -> pl.Expr:
    """The rule's ``mitre_technique_id`` values (metadata is a JSON object of lists)."""
    listed = (
        pl.col("metadata")
        .str.json_path_match("$.mitre_technique_id")
        .str.json_decode(pl.List(pl.String))
    )
    return listed.list.eval(pl.element().str.strip_chars().str.to_uppercase()).list.eval(
        pl.element().filter(pl.element().str.contains(r"^T\d{4}(\.\d{3})?$"))
    )


def _category_techniques() -> pl.Expr:
    mapping = {k: list(v) for k, v in CATEGORY_TECHNIQUES.items()}
    return (
        pl.col("category")
        .str.to_lowercase()
        .str.strip_chars()
        .replace_strict(mapping, default=None, return_dtype=pl.List(pl.String))
    )


@detector(ID, reads="eve_alert", key=KEY, attack=ATTACK, params=SuricataAlertParams)
def suricata_alert(eve_alert: pl.LazyFrame, p: SuricataAlertParams) -> pl.LazyFrame:
    """Suricata's own alerts, one per signature, source and destination and window."""
    events = eve_alert.filter(
        pl.col("signature_id").is_not_null()
        & pl.col("src_ip").is_not_null()
        & pl.col("dest_ip").is_not_null()
    ).with_columns(
        tagged=pl.coalesce(
            pl.when(_metadata_techniques().list.len() > 0).then(_metadata_techniques()),
            _category_techniques(),
            pl.lit([], pl.List(pl.String)),
        )
    )
    hits = threshold(
        events,
        key=KEY,
        window=timedelta(minutes=p.window_minutes),
        at_least=1,
        extra=(
            pl.col("severity").min().alias("worst"),
            pl.col("signature").drop_nulls().first().alias("name"),
            pl.col("category").drop_nulls().first().alias("class"),
            pl.col("tagged")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique()
            .sort()
            .alias("techniques"),
            (pl.col("action") == "blocked").sum().alias("blocked"),
            pl.col("host").drop_nulls().first().alias("sensor"),
            pl.col("source_ip").drop_nulls().first().alias("attacker"),
            pl.col("target_ip").drop_nulls().first().alias("victim"),
        ),
    ).with_columns(
        attacker=pl.coalesce("attacker", "src_ip"), victim=pl.coalesce("victim", "dest_ip")
    )
    severity = pl.col("worst").replace_strict(_SEVERITY, default="low", return_dtype=pl.String)
    confidence = (
        pl.when(pl.col("worst") == 1)
        .then(pl.lit(p.confidence_high))
        .when(pl.col("worst") == 2)
        .then(pl.lit(p.confidence_medium))
        .otherwise(pl.lit(p.confidence_low))
    )
    blocked = (
        pl.when(pl.col("blocked") > 0)
        .then(pl.format(", {} blocked", pl.col("blocked")))
        .otherwise(pl.lit(""))
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=pl.col("techniques").list.drop_nulls(),
        severity=severity,
        confidence=confidence,
        summary=pl.format(
            "Suricata{}: {} (sid {}{}) from {} to {}: {} alert(s){}",
            pl.when(pl.col("sensor").is_not_null())
            .then(pl.format(" on {}", pl.col("sensor")))
            .otherwise(pl.lit("")),
            pl.coalesce("name", pl.lit("?")),
            pl.col("signature_id"),
            pl.when(pl.col("class").is_not_null() & (pl.col("class") != ""))
            .then(pl.format(", {}", pl.col("class")))
            .otherwise(pl.lit("")),
            pl.col("attacker"),
            pl.col("victim"),
            pl.col("n"),
            blocked,
        ),
        src=pl.col("attacker"),
        dst=pl.col("victim"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="eve_alert",
        evidence=pl.col("uids"),
        key=pl.format("{}|{}|{}", pl.col("signature_id"), pl.col("src_ip"), pl.col("dest_ip")),
    )
