"""Abuse notices: telling the network that hosts an attacker what its host did to us.

A notice is the one thing mamori sends outside about an attacker, and it goes to the abuse desk of
the attacker's network, never to the attacker's own systems: the desk's address comes only from
data the user gives (RDAP responses saved as JSON, whois text, or a mapping in a YAML file); mamori
never queries anything to find it.

The message follows ARF (RFC 5965) with X-ARF v0.2's machine-readable part, the two formats abuse
desks parse automatically: ``multipart/report; report-type=feedback-report`` holding
1. ``text/plain``: what happened, for a person;
2. ``message/feedback-report``: ``Feedback-Type: abuse``, ``Source-IP``, ``Arrival-Date``, ...;
3. ``text/plain; name=report.yaml``: X-ARF fields (``Reported-From``, ``Category``,
   ``Report-Type``, ``Source``, ``Date``, ...) and the evidence summary: times, our victim, their
   address, connection counts per detection. Never packets or payloads.

Delivery is through the user's SMTP relay (``smtplib``) or into ``.eml`` files for a person to send.
"""

from __future__ import annotations

import ipaddress
import json
import re
import smtplib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import yaml

from mamori import __version__ as _version
from mamori.respond.decision import Action, Decision, enforcement_point
from mamori.respond.points.targets import write_atomic

USER_AGENT = f"mamori/{_version}"
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_WHOIS_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_WHOIS_ABUSE = re.compile(
    r"^(?:abuse-mailbox|orgabuseemail|abuse-c-email|abuse email|abuse contact)\s*:\s*(\S+@\S+)",
    re.I | re.M,
)
_WHOIS_RIPE_NOTE = re.compile(r"abuse contact for '([^']+)' is '([^']+)'", re.I)
_WHOIS_RANGE = re.compile(r"^(?:inetnum|inet6num|netrange|cidr)\s*:\s*(.+)$", re.I | re.M)


class NotifyError(ValueError):
    """A notice that cannot be written or sent; the message names the file or incident and why."""


# ------------------------------------------------------------------------ finding the contact


@dataclass
class AbuseContacts:
    """Abuse addresses by network and by domain, built only from data the user supplies."""

    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, str]] = field(
        default_factory=list
    )  # (network, address, where it came from)
    domains: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add_network(self, net: str, address: str, source: str) -> None:
        if not _EMAIL.match(address):
            raise NotifyError(f"{source}: {address!r} is not an e-mail address")
        try:
            parsed = ipaddress.ip_network(net.strip(), strict=False)
        except ValueError as exc:
            raise NotifyError(f"{source}: {net!r} is not a network") from exc
        self.networks.append((parsed, address.lower(), source))

    def add_domain(self, name: str, address: str, source: str) -> None:
        if not _EMAIL.match(address):
            raise NotifyError(f"{source}: {address!r} is not an e-mail address")
        self.domains[name.lower().rstrip(".")] = (address.lower(), source)

    def lookup(self, target: str) -> tuple[str, str] | None:
        """(address, source) for an IP (the most specific network wins) or a domain (the closest
        parent wins); None when the data has no contact."""
        try:
            addr = ipaddress.ip_address(target.split("/")[0])
        except ValueError:
            name = target.lower().rstrip(".")
            while name:
                if name in self.domains:
                    return self.domains[name]
                name = name.partition(".")[2]
            return None
        hits = [(n.prefixlen, a, s) for n, a, s in self.networks if addr in n]
        if not hits:
            return None
        _, address, source = max(hits)
        return address, source

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> AbuseContacts:
        """Read RDAP JSON (RFC 9083), whois text, or a YAML mapping ``{network or domain: email}``,
        each chosen by its content; a folder means every file in it."""
        contacts = cls()
        files: list[Path] = []
        for path in map(Path, paths):  # a folder stands for the files in it (saved RDAP answers)
            files += sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise NotifyError(f"{path}: cannot read: {exc.strerror}") from exc
            stripped = text.lstrip()
            if stripped.startswith("{") and '"objectClassName"' in text:
                try:
                    _read_rdap(contacts, json.loads(text), str(path))
                except json.JSONDecodeError as exc:
                    raise NotifyError(f"{path}: line {exc.lineno}: not JSON: {exc.msg}") from exc
            elif _WHOIS_RANGE.search(text) or _WHOIS_ABUSE.search(text):
                _read_whois(contacts, text, str(path))
            else:
                _read_mapping(contacts, text, str(path))
        return contacts


def _rdap_emails(obj: Mapping[str, Any]) -> list[str]:
    """Abuse e-mails of an RDAP object's entities (and their nested entities)."""
    found = []
    for entity in obj.get("entities") or []:
        if "abuse" in [r.lower() for r in entity.get("roles") or []]:
            card = entity.get("vcardArray") or []
            for prop in card[1] if len(card) > 1 else []:
                if prop and prop[0] == "email" and isinstance(prop[-1], str):
                    found.append(prop[-1])
        found += _rdap_emails(entity)
    return found


def _read_rdap(contacts: AbuseContacts, obj: Any, source: str) -> None:
    if not isinstance(obj, dict):
        raise NotifyError(f"{source}: an RDAP response is a JSON object")
    emails = _rdap_emails(obj)
    if not emails:
        raise NotifyError(f"{source}: RDAP object has no entity with the role 'abuse' and an email")
    kind = obj.get("objectClassName")
    if kind == "ip network":
        nets = [
            f"{c.get('v4prefix') or c.get('v6prefix')}/{c['length']}"
            for c in obj.get("cidr0_cidrs") or []
        ]
        if not nets and obj.get("startAddress") and obj.get("endAddress"):
            start = ipaddress.ip_address(obj["startAddress"])
            end = ipaddress.ip_address(obj["endAddress"])
            nets = [str(n) for n in ipaddress.summarize_address_range(start, end)]  # type: ignore[arg-type]
        if not nets:
            raise NotifyError(f"{source}: RDAP ip network has no address range")
        for net in nets:
            contacts.add_network(net, emails[0], source)
    elif kind == "domain" and obj.get("ldhName"):
        contacts.add_domain(obj["ldhName"], emails[0], source)
    else:
        raise NotifyError(
            f"{source}: RDAP object of class {kind!r} is neither ip network nor domain"
        )


def _read_whois(contacts: AbuseContacts, text: str, source: str) -> None:
    note = _WHOIS_RIPE_NOTE.search(text)
    direct = _WHOIS_ABUSE.search(text)
    address = (direct.group(1) if direct else None) or (note.group(2) if note else None)
    if not address:
        raise NotifyError(f"{source}: whois text names no abuse mailbox")
    address = _WHOIS_EMAIL.search(address).group(0) if _WHOIS_EMAIL.search(address) else address
    ranges = _WHOIS_RANGE.findall(text)
    if not ranges:
        raise NotifyError(f"{source}: whois text names no address range")
    for value in ranges:
        for part in value.split(","):
            part = part.strip()
            if " - " in part:
                lo, hi = (ipaddress.ip_address(x.strip()) for x in part.split(" - "))
                for n in ipaddress.summarize_address_range(lo, hi):  # type: ignore[arg-type]
                    contacts.add_network(str(n), address, source)
            elif part:
                contacts.add_network(part, address, source)


def _read_mapping(contacts: AbuseContacts, text: str, source: str) -> None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NotifyError(f"{source}: not YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise NotifyError(f"{source}: expected a mapping of network or domain to abuse e-mail")
    for key, address in data.items():
        where = f"{source}: {key}"
        if not isinstance(address, str):
            raise NotifyError(f"{where}: the abuse contact must be an e-mail address")
        try:
            ipaddress.ip_network(str(key), strict=False)
        except ValueError:
            contacts.add_domain(str(key), address, where)
        else:
            contacts.add_network(str(key), address, where)


# ------------------------------------------------------------------------- writing the notice


@dataclass(frozen=True)
class Reporter:
    """Who is reporting: the From address and the organisation, as the abuse desk will see it."""

    address: str
    organisation: str
    reply_to: str | None = None
    hide_victims: bool = False  # say "one of our hosts" instead of its address


def _evidence(incident: Mapping[str, Any], target: str) -> list[dict[str, Any]]:
    rows = []
    for alert in incident.get("alerts") or []:
        if target not in (alert.get("src"), alert.get("dst")):
            continue
        evidence = alert.get("evidence") or {}
        rows.append(
            {
                "detector": alert.get("detector"),
                "summary": alert.get("summary"),
                "first_seen": alert.get("first_seen"),
                "last_seen": alert.get("last_seen"),
                "source": alert.get("src"),
                "destination": alert.get("dst"),
                "records": alert.get("count", len(evidence.get("uids") or [])),
                "table": evidence.get("table"),
            }
        )
    return rows


def _category(incident: Mapping[str, Any]) -> tuple[str, str]:
    """X-ARF category and report type from the incident's detectors."""
    detectors = " ".join(str(a.get("detector", "")) for a in incident.get("alerts") or [])
    if "bruteforce" in detectors or "credential" in detectors:
        return "abuse", "login-attack"
    if "scan" in detectors:
        return "abuse", "portscan"
    if "ddos" in detectors or "flood" in detectors:
        return "abuse", "ddos"
    if "c2" in detectors or "beacon" in detectors or "intel" in detectors:
        return "fraud", "malware"
    return "abuse", "other"


def build_notice(
    incident: Mapping[str, Any],
    target: str,
    recipient: str,
    reporter: Reporter,
    now: datetime | None = None,
    contact_source: str | None = None,
) -> EmailMessage:
    """The ARF/X-ARF message about ``target``'s part in ``incident``, addressed to ``recipient``."""
    now = now or datetime.now(UTC)
    incident_id = str(incident.get("id") or "")
    rows = _evidence(incident, target)
    if not rows:
        raise NotifyError(
            f"incident {incident_id}: no alert names {target} as source or destination"
        )
    victims = sorted(
        {str(r["destination"]) for r in rows if r["destination"] not in (None, target)}
    )
    title = str(incident.get("title", "an incident"))
    if reporter.hide_victims:
        # every address of ours the incident names, in any field a person or parser reads
        ours = set(victims) | set((incident.get("entities") or {}).get("victims") or [])
        ours |= {
            str(r[k]) for r in rows for k in ("source", "destination") if r[k] not in (None, target)
        }

        def redact(text: str) -> str:
            for host in sorted(ours, key=len, reverse=True):
                text = text.replace(host, "[our host]")
            return text

        victims = [f"one of {reporter.organisation}'s hosts"] * bool(victims)
        title = redact(title)
        for r in rows:
            r["summary"] = redact(str(r["summary"]))
            for k in ("source", "destination"):
                if r[k] not in (None, target):
                    r[k] = "[our host]"
    first = min(str(r["first_seen"]) for r in rows)
    last = max(str(r["last_seen"]) for r in rows)
    total = sum(int(r["records"] or 0) for r in rows)
    category, report_type = _category(incident)
    report_id = f"{incident_id}/{target}"

    human = [
        f"Hello,\n\nthis is an automated abuse report from {reporter.organisation}.",
        f"A host in your network, {target}, took part in activity against our network that our "
        f"monitoring recorded as: {title}.",
        "",
        f"  Incident:  {incident_id} (severity {incident.get('severity')}, "
        f"confidence {float(incident.get('confidence') or 0):.2f})",
        f"  Source:    {target}",
        f"  Targets:   {', '.join(victims) or '-'}",
        f"  Between:   {first} and {last} (UTC)",
        f"  Records:   {total} connection records in {len(rows)} detection(s)",
        "",
        "Detections:",
        *(
            f"  - {r['first_seen']} .. {r['last_seen']}  {r['detector']}: {r['summary']} "
            f"({r['records']} records)"
            for r in rows
        ),
        "",
        "A machine-readable copy follows (ARF, RFC 5965, and X-ARF 0.2). We have blocked the "
        "address at our own edge for a limited time; we have not and will not contact the host "
        "itself. Please investigate whether it is compromised.",
        "",
        f"-- \n{reporter.organisation} <{reporter.reply_to or reporter.address}>",
    ]
    msg = EmailMessage(policy=SMTP)
    msg["From"] = reporter.address
    msg["To"] = recipient
    if reporter.reply_to:
        msg["Reply-To"] = reporter.reply_to
    msg["Subject"] = f"[abuse report] {report_type} from {target} ({incident_id})"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=reporter.address.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-ARF"] = "Yes"
    msg["X-Mamori-Incident"] = incident_id
    msg.set_content("\n".join(human), subtype="plain", cte="quoted-printable")

    feedback = Message()
    feedback["Feedback-Type"] = "abuse"
    feedback["User-Agent"] = USER_AGENT
    feedback["Version"] = "1"
    feedback["Arrival-Date"] = format_datetime(_parse_time(first))
    feedback["Reported-Domain"] = reporter.address.rpartition("@")[2]
    if _is_ip(target):
        feedback["Source-IP"] = target
    else:
        feedback["Reported-URI"] = f"dns:{target}"
    feedback["Incidents"] = str(max(1, total))

    xarf = {
        "Reported-From": reporter.address,
        "Category": category,
        "Report-Type": report_type,
        "Report-ID": report_id,
        "Service": "network",
        "Version": "0.2",
        "User-Agent": USER_AGENT,
        "Date": format_datetime(_parse_time(first)),
        "Source": target,
        "Source-Type": "ipv4"
        if ":" not in target and _is_ip(target)
        else "ipv6"
        if _is_ip(target)
        else "domain",
        "Incident": {
            "id": incident_id,
            "title": title,
            "severity": incident.get("severity"),
            "confidence": incident.get("confidence"),
            "techniques": list(incident.get("techniques") or []),
            "first_seen": first,
            "last_seen": last,
            "victims": victims,
            "records": total,
            "detections": rows,
        },
    }
    if contact_source:
        xarf["Contact-Source"] = contact_source

    msg.make_mixed()
    msg.replace_header("Content-Type", "multipart/report; report-type=feedback-report")
    msg.set_boundary(f"=_mamori_{uuid.uuid4().hex}")
    fb_part = EmailMessage(policy=SMTP)
    fb_part.set_content(feedback, disposition=None)  # message/rfc822 by default; fixed below
    fb_part.replace_header("Content-Type", "message/feedback-report")
    msg.attach(fb_part)
    yaml_part = EmailMessage(policy=SMTP)
    yaml_part.set_content(
        yaml.safe_dump(xarf, sort_keys=False, allow_unicode=True),
        subtype="plain",
        filename="report.yaml",
        disposition="inline",
    )
    msg.attach(yaml_part)
    for part in (fb_part, yaml_part):
        del part["MIME-Version"]
    return msg


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise NotifyError(f"bad time {text!r} in the incident") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class SmtpRelay:
    """The user's own mail relay; mamori never talks SMTP to anyone else."""

    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0


def deliver(
    msg: EmailMessage, relay: SmtpRelay | None = None, outbox: Path | None = None
) -> Path | None:
    """Send through ``relay``, or write ``<outbox>/<incident>-<target>.eml`` for a person to send.
    Returns the file written, if any."""
    if relay is None and outbox is None:
        raise NotifyError("a notice needs an SMTP relay or an outbox folder")
    written = None
    if outbox is not None:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{msg['X-Mamori-Incident']}-{msg['To']}")
        written = outbox / f"{stem}.eml"
        write_atomic(written, msg.as_string())
    if relay is not None:
        try:
            with smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout) as smtp:
                if relay.starttls:
                    smtp.starttls()
                if relay.username:
                    smtp.login(relay.username, relay.password or "")
                refused = smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"SMTP relay {relay.host}:{relay.port}: {exc}") from exc
        if refused:
            raise NotifyError(f"SMTP relay {relay.host}:{relay.port} refused {sorted(refused)}")
    return written


# ------------------------------------------------------------------- as an enforcement point


def load_incidents(reports: Iterable[str | Path]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for path in map(Path, reports):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise NotifyError(f"{path}: cannot read the patrol report: {exc}") from exc
        for incident in data.get("incidents") or []:
            out[str(incident.get("id"))] = incident
    return out


@enforcement_point("abuse-notify")
class AbuseNotifier:
    """Carries ``notify`` decisions: one notice per decision, when it is enforced. Removal sends
    nothing (a notice cannot be unsent); ``render`` lists what would be sent to whom."""

    name = "abuse-notify"
    actions = frozenset({Action.notify})

    def __init__(
        self,
        reporter: Reporter,
        contacts: AbuseContacts,
        incidents: Mapping[str, Mapping[str, Any]],
        relay: SmtpRelay | None = None,
        outbox: str | Path | None = None,
    ) -> None:
        self.reporter = reporter
        self.contacts = contacts
        self.incidents = incidents
        self.relay = relay
        self.outbox = Path(outbox) if outbox is not None else None
        self.sent: list[EmailMessage] = []
        self.unreachable: list[tuple[Decision, str]] = []  # decisions with no contact, and why
        # ids of the last apply's decisions not carried out (no contact yet): not "applied", so
        # ``points.sync.enforce`` offers them again once the contact data has them
        self.skipped: set[str] = set()

    def plan(self, d: Decision) -> tuple[str, str] | None:
        return self.contacts.lookup(d.target)

    def render(self, active: Sequence[Decision], now: datetime) -> str:
        lines = []
        for d in active:
            if d.action not in self.actions:
                continue
            hit = self.plan(d)
            who = f"{hit[0]} (from {hit[1]})" if hit else "no abuse contact in the data"
            lines.append(f"{d.id} {d.incident} {d.target} -> {who}")
        return "\n".join(lines) + ("\n" if lines else "")

    def apply(self, added: Sequence[Decision], removed: Sequence[Decision]) -> None:
        self.skipped = set()
        for d in added:
            if d.action not in self.actions:
                continue
            hit = self.plan(d)
            if hit is None:
                self.unreachable.append((d, "no abuse contact in the data"))
                self.skipped.add(d.id)
                continue
            incident = self.incidents.get(d.incident)
            if incident is None:
                raise NotifyError(f"{d.id}: incident {d.incident} is not in the given reports")
            msg = build_notice(incident, d.target, hit[0], self.reporter, contact_source=hit[1])
            deliver(msg, self.relay, self.outbox)
            self.sent.append(msg)
