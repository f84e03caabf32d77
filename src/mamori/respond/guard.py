"""The rules-of-engagement guard: every proposed decision is judged here before anything acts.

The guard gives each decision ``allow``, ``needs_approval`` or ``deny`` with every reason that
applies (not just the first), so a person reading a denial sees all that is wrong with it. The hard
rules (protected assets, widest prefix, finite TTL, least confidence, enabled actions) produce
``deny``, and nothing downstream can turn a deny into an enforcement: a person may approve only
``needs_approval`` decisions, and the ledger re-checks the hard rules at approval time.

An over-long TTL is *clamped* to the policy's longest TTL by default (``over_ttl: clamp``; the
judged decision carries the shorter TTL and a reason says so) or denied (``over_ttl: deny``). A
TTL that is not a finite positive number of seconds is always denied.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from mamori.respond.decision import Action, Decision, Judgement, Verdict
from mamori.respond.duration import format_duration
from mamori.respond.policy import Policy
from mamori.respond.targets import DomainTarget, IpTarget, TargetError, parse_domain, parse_network

IP_ACTIONS = frozenset({Action.block_ip, Action.rate_limit, Action.quarantine})
DOMAIN_ACTIONS = frozenset({Action.block_domain, Action.sinkhole})
# notify takes either: an address or a domain whose abuse contact receives a report

WINDOW = timedelta(minutes=1)


class Guard:
    """Judges decisions against one policy, remembering what it allowed in the last minute.

    ``recent`` seeds the rate window with the times of decisions allowed before this guard existed
    (the ledger passes those from the state database), so restarting cannot reset the limit.
    """

    def __init__(self, policy: Policy, recent: Iterable[datetime] = ()) -> None:
        self.policy = policy
        self._allowed: deque[datetime] = deque(sorted(recent))

    def judge(self, decision: Decision, now: datetime | None = None) -> Judgement:
        """The verdict on one decision; an allowed one counts toward the per-minute limit."""
        now = now or datetime.now(UTC)
        judged, denials, approvals, notes = self.check(decision)
        if not denials and not approvals:
            while self._allowed and self._allowed[0] <= now - WINDOW:
                self._allowed.popleft()
            limit = self.policy.max_per_minute
            if len(self._allowed) >= limit:
                why = (
                    f"rate: {len(self._allowed)} decisions allowed in the last minute (max {limit})"
                )
                if self.policy.over_rate is Verdict.deny:
                    denials.append(why)
                else:
                    approvals.append(why + "; a person decides the rest")
        if denials:
            return Judgement(judged, Verdict.deny, tuple(denials + approvals + notes))
        if approvals:
            return Judgement(judged, Verdict.needs_approval, tuple(approvals + notes))
        self._allowed.append(now)
        return Judgement(judged, Verdict.allow, (f"within {self.policy.source}", *notes))

    def judge_all(
        self, decisions: Sequence[Decision], now: datetime | None = None
    ) -> list[Judgement]:
        now = now or datetime.now(UTC)
        return [self.judge(d, now) for d in decisions]

    def check(self, decision: Decision) -> tuple[Decision, list[str], list[str], list[str]]:
        """The rules that do not depend on history: (decision as it would be enforced — canonical
        target, TTL clamped —, deny reasons, approval reasons, notes)."""
        p = self.policy
        denials: list[str] = []
        approvals: list[str] = []
        notes: list[str] = []
        try:
            action = Action(decision.action)
        except ValueError:
            return decision, [f"unknown action {decision.action!r}"], [], []
        if action not in p.actions:
            denials.append(f"action {action} is not enabled in {p.source}")

        target = decision.target
        ip: IpTarget | None = None
        dom: DomainTarget | None = None
        try:
            if action in IP_ACTIONS:
                ip = parse_network(target)
            elif action in DOMAIN_ACTIONS:
                dom = parse_domain(target)
            else:
                try:
                    ip = parse_network(target)
                except TargetError:
                    dom = parse_domain(target)
        except TargetError as e:
            denials.append(f"target: {e}")
        if ip is not None:
            target = ip.text
            denials += self._ip_rules(action, ip)
        if dom is not None:
            target = dom.text
            denials += self._domain_rules(dom)

        conf = decision.confidence
        least = p.min_confidence[action]
        if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
            denials.append(f"confidence {conf!r} is not a number between 0 and 1")
        elif conf < least:
            denials.append(f"confidence {conf:.2f} is below {least:.2f}, the least for {action}")

        ttl = decision.ttl
        longest = p.max_ttl[action]
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or not math.isfinite(ttl)
            or ttl <= 0
            or ttl != int(ttl)
        ):
            denials.append(f"ttl {ttl!r} is not a finite positive number of seconds")
            ttl = 0
        elif ttl > longest:
            if p.over_ttl == "deny":
                denials.append(
                    f"ttl {format_duration(int(ttl))} is longer than {format_duration(longest)}, "
                    f"the longest for {action}"
                )
            else:
                notes.append(
                    f"ttl clamped from {format_duration(int(ttl))} to {format_duration(longest)}"
                )
                ttl = longest
        if action in p.approval:
            approvals.append(f"{action} needs a person's approval in {p.source}")
        judged = decision
        if target != decision.target or ttl != decision.ttl or type(decision.ttl) is not int:
            judged = replace(decision, target=target, ttl=int(ttl))  # 3600.0 is enforced as 3600
        return judged, denials, approvals, notes

    def _ip_rules(self, action: Action, ip: IpTarget) -> list[str]:
        p = self.policy
        out = []
        hit = p.guarded.touching_ip(ip)
        if hit is not None:
            out.append(f"target {ip.text} touches protected {hit[1]} ({hit[0]})")
        if action is Action.quarantine:
            if not ip.is_host:
                out.append(f"quarantine isolates one host, not the network {ip.text}")
            if not p.own.contains_ip(ip):
                out.append(f"quarantine acts only on your own hosts; {ip.text} is outside own")
        else:
            hit = p.own.touching_ip(ip)
            if hit is not None:
                out.append(f"target {ip.text} touches protected {hit[1]} (own)")
        # an IPv6 target that carries IPv4 (::ffff:0:0/96 is all of IPv4) is judged in both families
        widths = [ip.span, *(f for f in ip.forms if f.version < ip.span.version)]
        for form in widths:
            least = p.max_prefix[form.version]
            if form.prefixlen < least:
                out.append(
                    f"prefix /{form.prefixlen} of {form} is wider than /{least}, "
                    f"the widest IPv{form.version} block allowed"
                )
        return out

    def _domain_rules(self, dom: DomainTarget) -> list[str]:
        p = self.policy
        out = []
        for assets in (p.guarded, p.own):
            hit = assets.touching_domain(dom)
            if hit is not None:
                out.append(f"target {dom.text} touches protected {hit[1]} ({hit[0]})")
        if len(dom.labels) < p.min_domain_labels:
            out.append(
                f"{dom.text} has {len(dom.labels)} label(s); blocking needs at least "
                f"{p.min_domain_labels} (a whole top-level domain is too wide)"
            )
        return out
