"""How a unit is shown: text tinted by its value (terminal or HTML) and a PNG of activations.

The tint is diverging: white at 0, red for positive values and blue for negative ones, at full
strength for the text's largest |value| (the page's Cells tab uses the same two colours).
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from lm.evaluation.cells import Tinted
from lm.evaluation.text_features import FEATURES

if TYPE_CHECKING:
    from lm.evaluation.inspection import Observed

POSITIVE = (178, 24, 43)   # ColorBrewer RdBu's ends
NEGATIVE = (33, 102, 172)
DARK_FROM = 0.6            # from this strength on, the characters are drawn white
PLOT_TOKENS = 160          # tokens drawn per feature in the PNG


def strength(value: float, scale: float) -> float:
    """The value as a share of the scale, clipped to [−1, 1]."""
    return max(-1.0, min(1.0, value / scale)) if scale else 0.0


def colour(value: float, scale: float) -> str:
    """``#rrggbb`` between white (0) and red (+scale) or blue (−scale)."""
    x = strength(value, scale)
    end = POSITIVE if x > 0 else NEGATIVE
    rgb = [round(255 + (c - 255) * abs(x)) for c in end]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def characters(tinted: Tinted) -> Iterator[tuple[str, float | None]]:
    """Each character of the text with its token's value (None between tokens, and for a
    newline, which is drawn plain)."""
    by_char: list[float | None] = [None] * len(tinted.text)
    for (start, end), value in zip(tinted.spans, tinted.values, strict=True):
        for i in range(start, end):
            by_char[i] = value
    for ch, value in zip(tinted.text, by_char, strict=True):
        yield ch, (None if ch == "\n" else value)


def rich_text(tinted: Tinted) -> Text:
    """The text with each character's background tinted, for a terminal (rich)."""
    text = Text()
    for ch, value in characters(tinted):
        if value is None:
            text.append(ch)
            continue
        ink = "white" if abs(strength(value, tinted.scale)) >= DARK_FROM else "black"
        text.append(ch, style=f"{ink} on {colour(value, tinted.scale)}")
    return text


def html_page(tinted: list[Tinted], title: str) -> str:
    """A standalone page (no script, no outside file): each text tinted by its unit, the
    value of each character in its tooltip."""
    sections = []
    for item in tinted:
        spans = []
        for ch, value in characters(item):
            if value is None:
                spans.append(html.escape(ch))
                continue
            ink = "#fff" if abs(strength(value, item.scale)) >= DARK_FROM else "#000"
            spans.append(f'<span style="background:{colour(value, item.scale)};color:{ink}" '
                         f'title="{value:+.3f}">{html.escape(ch)}</span>')
        sections.append(f"<h2>unit {html.escape(item.unit)}</h2>\n<p class=scale>"
                        f'<span style="background:{colour(-1, 1)};color:#fff">'
                        f"−{item.scale:.3g}</span> 0 <span style=\"background:"
                        f'{colour(1, 1)};color:#fff">+{item.scale:.3g}</span></p>\n'
                        f"<div class=text>{''.join(spans)}</div>")
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>\n<style>body{{font-family:system-ui,"
            "sans-serif;margin:24px;background:#faf8f3}} .text{white-space:pre-wrap;"
            "font-size:22px;line-height:1.6;font-family:'Noto Sans CJK SC','WenQuanYi Zen Hei',"
            "monospace}} .scale{font-size:13px;color:#555}</style></head>\n<body>"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")


def _labels(pieces: list[str]) -> tuple[list[str], list[str]] | None:
    """Tick labels for the tokens and the fonts that have them (the first one's weight is
    medium, the only one some CJK fonts have); None when matplotlib has no such font."""
    from matplotlib import font_manager

    shown = ["⏎" if p == "\n" else ("§" if p == "<eos>" else p) for p in pieces]
    families = ["DejaVu Sans"]
    if not all(ch.isascii() or ch in "⏎§" for p in shown for ch in p):
        families = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "Droid Sans Fallback"]
    for family in families:
        try:
            font_manager.findfont(family, fallback_to_default=False)
        except ValueError:
            continue
        return shown, list(dict.fromkeys([family, "DejaVu Sans"]))
    return None


def plot_units(seen: Observed, ranked: dict[str, dict[str, Any]], pieces: list[str],
               path: Path, title: str) -> None:
    """Each feature's best unit over the split's first tokens (a few poems), the feature in
    grey on its own axis, a dotted line where each line begins."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # a CJK font of one weight makes matplotlib log a line per label; the text is right anyway
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    shown = [name for name, item in ranked.items() if item["best"]]
    n = min(PLOT_TOKENS, len(seen.recording.ids))
    labels = _labels([pieces[i] for i in seen.recording.ids[:n]])
    fig, axes = plt.subplots(max(1, len(shown)), 1, figsize=(14, 1.9 * max(1, len(shown))),
                             sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], shown, strict=False):
        best = ranked[name]["best"][0]
        feature = seen.features[name][:n]
        ax.plot(seen.recording.column(best["unit"])[:n], color="#b2182b", lw=1.4)
        ax.set_ylabel(best["unit"], fontsize=8)
        twin = ax.twinx()
        twin.step(range(n), feature, where="mid", color="#888", lw=1, alpha=0.8)
        twin.set_ylabel(name, fontsize=8, color="#666")
        starts = [i for i in range(1, n) if seen.features["line_position"][i] == 0]
        for x in starts:
            ax.axvline(x - 0.5, color="#ccc", lw=0.6, ls=":")
        ax.set_title(f"{name} ({FEATURES[name].help}): unit {best['unit']}, "
                     f"r = {best['r']:+.3f}", fontsize=9, loc="left")
    if labels is not None:
        axes[-1, 0].set_xticks(range(n), labels[0], fontsize=6, fontfamily=labels[1],
                                 fontweight="medium")
    axes[-1, 0].set_xlim(-0.5, n - 0.5)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
