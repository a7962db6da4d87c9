"""An evaluation's outcome, as one JSON-ready object and as a table for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .metrics import METRICS


@dataclass
class EvalReport:
    """Figures per result name (single routes and fusions, metrics as fractions in [0, 1]), the
    name of the result the product's default settings give, timings and settings."""

    dataset: str
    queries: int
    results: dict[str, dict[str, float]]
    default: str
    timings: dict[str, float]
    settings: dict[str, Any]
    # Per query family: {"queries": n, "results": {result: metrics}} (empty: no families).
    families: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` object: dataset, queries, results (all queries), families (the same
        per query family), default (+ timings, settings)."""
        return {
            "dataset": self.dataset,
            "queries": self.queries,
            "results": self.results,
            "default": self.default,
            "families": self.families,
            "timings": self.timings,
            "settings": self.settings,
        }

    def family_table(self, metric: str = "ndcg@10") -> dict[str, dict[str, float]]:
        """One metric per result, per family and for all queries: {result: {family: value}}."""
        out: dict[str, dict[str, float]] = {}
        for name, row in self.results.items():
            out[name] = {fam: f["results"][name][metric] for fam, f in self.families.items()}
            out[name]["all"] = row[metric]
        return out


def format_table(
    results: dict[str, dict[str, float]], default: str | None = None, name_header: str = "result"
) -> str:
    """A fixed-width table of the results in percent; the default's row is marked with ``*``."""
    names = list(results)
    width = max([len(name_header), *(len(n) + 2 for n in names)])
    header = f"{name_header:<{width}}" + "".join(f"{m:>11}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for name in names:
        label = f"{name} *" if name == default else name
        row = results[name]
        lines.append(f"{label:<{width}}" + "".join(f"{100 * row[m]:>11.1f}" for m in METRICS))
    return "\n".join(lines)


def format_markdown(results: dict[str, dict[str, float]], default: str | None = None) -> str:
    """The same table in Markdown (for docs/QUALITY.md), figures in percent."""
    lines = ["| result | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, row in results.items():
        label = f"**{name}** (default)" if name == default else f"`{name}`"
        lines.append(f"| {label} | " + " | ".join(f"{100 * row[m]:.1f}" for m in METRICS) + " |")
    return "\n".join(lines)


def format_families(report: EvalReport, metric: str = "ndcg@10") -> str:
    """One metric per result (rows) and query family (columns), in percent."""
    table = report.family_table(metric)
    columns = [*report.families, "all"]
    width = max([len(metric), *(len(n) + 2 for n in table)])
    header = f"{metric:<{width}}" + "".join(f"{c:>11}" for c in columns)
    lines = [header, "-" * len(header)]
    for name, row in table.items():
        label = f"{name} *" if name == report.default else name
        lines.append(f"{label:<{width}}" + "".join(f"{100 * row[c]:>11.1f}" for c in columns))
    return "\n".join(lines)


def format_report(report: EvalReport) -> str:
    """The human output of ``mmretrieve eval``."""
    t = report.timings
    models = ", ".join(f"{k} {v}" for k, v in report.settings.get("models", {}).items() if v)
    level = report.settings.get("level", "flat")
    lines = [
        f"{report.dataset}: {report.queries} queries ({models}); judged on "
        + ("the articles a search returns" if level == "article" else "the fused items"),
        "",
        format_table(report.results, report.default),
        "",
    ]
    if report.families:
        sizes = ", ".join(f"{fam} {f['queries']}" for fam, f in report.families.items())
        lines += [f"Per query family ({sizes}):", "", format_families(report), ""]
    lines += [
        f"* = the product's default ({report.default}); metrics in percent.",
        f"Time: index {t['index_s']:.1f} s, encode {t['encode_s']:.1f} s "
        f"({t['encode_ms_per_query']:.1f} ms/query), search {t['search_s']:.1f} s "
        f"({t['search_ms_per_query']:.1f} ms/query), scoring {t['score_s']:.1f} s.",
    ]
    return "\n".join(lines)
