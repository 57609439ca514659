"""What fuse() did: each rewrite with where, what it saves and how it was checked, and each
refusal with its reason."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from operator import attrgetter

from .trace import short_location


@dataclass(frozen=True, slots=True)
class RewriteKind:
    """What every rewrite with one verification outcome shares: one object, not one per rewrite
    (a 61-layer model has a few kinds and thousands of rewrites)."""
    pattern: str
    spelling: str
    verified: bool
    saved_dispatches: int
    saved_bytes: int
    replaced_ops: str  # "ttnn.reshape -> ttnn.to_layout -> ..."
    replacement: str  # "micro_ops.prepare_expert_weights"
    check: str  # "bit-exact (5 trials)" or "<= 0.5 ulp (6 trials)"
    # the verification's measurements (numerics.Measured.to_dict()): check kind, trials, max
    # abs and ulp error, pcc
    measured: dict | None = field(default=None, compare=False, hash=False)


class Rewrite:
    """One applied rewrite: where it is, how many ops it replaced and the constants it captured;
    the rest is its kind's, read through."""
    __slots__ = ("kind", "location", "nodes_replaced", "_captures")
    FIELDS = ("pattern", "location", "verified", "nodes_replaced", "saved_dispatches", "saved_bytes", "spelling",
              "replaced_ops", "replacement", "check", "captures", "errors")

    def __init__(self, kind: RewriteKind, location: str, nodes_replaced: int, captures: dict | None = None):
        self.kind = kind
        self.location = location  # "file:line" of the first matched op in the user's source
        self.nodes_replaced = nodes_replaced
        self._captures = captures

    pattern = property(attrgetter("kind.pattern"))
    spelling = property(attrgetter("kind.spelling"))
    verified = property(attrgetter("kind.verified"))
    saved_dispatches = property(attrgetter("kind.saved_dispatches"))
    saved_bytes = property(attrgetter("kind.saved_bytes"))
    replaced_ops = property(attrgetter("kind.replaced_ops"))
    replacement = property(attrgetter("kind.replacement"))
    check = property(attrgetter("kind.check"))

    @property
    def captures(self) -> dict:
        return dict(self._captures) if self._captures else {}

    @property
    def errors(self) -> dict:
        """How close the verification found it: check, trials, max_abs_error, max_ulp_error, pcc."""
        return dict(self.kind.measured) if self.kind.measured else {}

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.FIELDS}

    def __eq__(self, other) -> bool:
        return isinstance(other, Rewrite) and self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self) -> str:
        return "Rewrite(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS) + ")"


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
    # calls of the model that ttnn itself refuses (as Refusal(op, location, ttnn's message))
    rejected: list = field(default_factory=list)

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
            "rewrites": [r.to_dict() for r in self.rewrites],
            "refusals": [asdict(r) for r in self.refusals],
            "rejected_by_ttnn": [asdict(r) for r in self.rejected],
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
        if self.rejected:
            rows = [("op", "location", "ttnn's reason")]
            rows += [(r.pattern, short_location(r.location), r.reason) for r in self.rejected]
            lines += ["", "ttnn rejects these calls of the model (they would fail on a device):"] + _table(rows)
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
