"""What fuse() did: each rewrite with where, what it saves and how it was checked, and each
refusal with its reason."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .trace import short_location


@dataclass(slots=True)
class Rewrite:
    pattern: str
    location: str  # "file:line" of the first matched op in the user's source
    verified: bool
    nodes_replaced: int
    saved_dispatches: int
    saved_bytes: int
    spelling: str = ""
    replaced_ops: str = ""  # "ttnn.reshape -> ttnn.to_layout -> ..."
    replacement: str = ""  # "micro_ops.prepare_expert_weights"
    check: str = ""  # "bit-exact" or "pcc=0.99998"
    captures: dict = field(default_factory=dict)


@dataclass
class Refusal:
    pattern: str
    location: str
    reason: str
    spelling: str = ""

    def __post_init__(self):
        # one line: reasons may quote multi-line errors from ttnn or nanobind
        reason = str(self.reason)
        # only ' ' is both whitespace and printable: a printable text without double, leading or
        # trailing spaces is already one line
        if not reason.isprintable() or "  " in reason or reason[:1] == " " or reason[-1:] == " ":
            reason = " ".join(reason.split())
        self.reason = reason


@dataclass
class FusionReport:
    model: str = ""
    rewrites: list = field(default_factory=list)
    refusals: list = field(default_factory=list)
    nodes_before: int = 0
    nodes_after: int = 0
    dispatches_before: int = 0
    dispatches_after: int = 0
    verifications_run: int = 0
    verifications_cached: int = 0
    seconds: dict = field(default_factory=dict)

    @property
    def saved_dispatches(self) -> int:
        return sum(r.saved_dispatches for r in self.rewrites)

    @property
    def saved_bytes(self) -> int:
        return sum(r.saved_bytes for r in self.rewrites)

    def by_pattern(self) -> dict:
        out: dict = {}
        for r in self.rewrites:
            out[r.pattern] = out.get(r.pattern, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "rewrites": [asdict(r) for r in self.rewrites],
            "refusals": [asdict(r) for r in self.refusals],
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "dispatches_before": self.dispatches_before,
            "dispatches_after": self.dispatches_after,
            "saved_dispatches": self.saved_dispatches,
            "saved_bytes": self.saved_bytes,
            "verifications_run": self.verifications_run,
            "verifications_cached": self.verifications_cached,
            "seconds": self.seconds,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def __str__(self) -> str:
        lines = [f"ttfuse report for {self.model}: {len(self.rewrites)} rewrites, {len(self.refusals)} refusals; "
                 f"dispatches {self.dispatches_before} -> {self.dispatches_after}, "
                 f"{_mib(self.saved_bytes)} of intermediates saved"]
        if self.rewrites:
            rows = [("pattern", "location", "ops replaced", "saved disp.", "saved bytes", "check")]
            for r in self.rewrites:
                rows.append((r.pattern + (f" [{r.spelling}]" if r.spelling else ""), short_location(r.location),
                             str(r.nodes_replaced), str(r.saved_dispatches), _mib(r.saved_bytes),
                             r.check if r.verified else "NOT VERIFIED"))
            lines += ["", "Fused:"] + _table(rows)
        if self.refusals:
            rows = [("pattern", "location", "reason")]
            for f in self.refusals:
                rows.append((f.pattern + (f" [{f.spelling}]" if f.spelling else ""), short_location(f.location), f.reason))
            lines += ["", "Refused:"] + _table(rows)
        return "\n".join(lines)


def _mib(n: int) -> str:
    sign = "-" if n < 0 else ""
    n = abs(n)
    if n >= 1 << 20:
        return f"{sign}{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{sign}{n / (1 << 10):.1f} KiB"
    return f"{sign}{n} B"


def _table(rows: list[tuple]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths[-1] = min(widths[-1], 120)
    out = []
    for j, r in enumerate(rows):
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out
