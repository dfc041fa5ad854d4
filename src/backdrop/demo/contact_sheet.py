"""A contact sheet for the demo: one self-contained HTML page, each input beside its output.

A pair with variants shows them side by side, each with its prompt; the renditions written
beside a result follow it as thumbnails with their name, pixel size, format and bytes. An input
stored sideways (an EXIF orientation) is shown as stored, from a copy without the EXIF that
browsers turn it by, so that the upright output shows what the pipeline turned.

The page has inline CSS only (no scripts, no fonts or images from elsewhere) and links the
pictures by paths relative to its own folder, so the folder can be zipped, mailed or opened
from disk. Every text on it (keys, prompts, error messages) is user data and is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from backdrop.demo.run_chart import CHART_CSS, render_run_chart
from backdrop.figures import Moment


@dataclass(frozen=True)
class PictureFacts:
    """What a file holds: its pixel size as stored, its format and its length."""

    width: int
    height: int
    format: str  # as Pillow names it: "JPEG", "PNG", "WEBP", "AVIF"
    bytes: int

    def __str__(self) -> str:
        return f"{self.width} × {self.height} {self.format} · {_size(self.bytes)}"


@dataclass(frozen=True)
class RenditionShot:
    name: str  # the rendition's name, or its "<width>x<height>"
    path: str  # relative to the sheet's folder
    facts: PictureFacts


@dataclass(frozen=True)
class VariantShot:
    """One of a pair's results beyond the first (variant n ≥ 2), with its own prompt."""

    number: int
    prompt: str | None
    output_path: str | None  # None when this variant failed
    facts: PictureFacts | None = None
    renditions: tuple[RenditionShot, ...] = ()


@dataclass(frozen=True)
class SheetEntry:
    name: str  # the input key, e.g. "shop/coffee.jpg"
    input_path: (
        str | None
    )  # path of the input image relative to the sheet's folder, or None when not an image
    output_path: str | None  # path of the output image relative to the sheet's folder; None on failure
    prompt: str | None
    error_class: str | None = None
    error_message: str | None = None
    input_facts: PictureFacts | None = None
    output_facts: PictureFacts | None = None
    # What the input carried that the pipeline must deal with ("EXIF orientation 6", "GPS
    # position"), and which of those any of its outputs still carries.
    input_notes: tuple[str, ...] = ()
    output_notes: tuple[str, ...] = ()
    # For an input stored sideways or mirrored: a copy of its pixels as stored, shown instead of it
    # (browsers turn the input itself as its EXIF says, whatever the page's CSS asks).
    input_as_stored_path: str | None = None
    renditions: tuple[RenditionShot, ...] = ()  # the first result's
    variants: tuple[VariantShot, ...] = ()  # variants 2 and on

    @property
    def failed(self) -> bool:
        return self.output_path is None or self.error_class is not None


def write_contact_sheet(
    folder: Path,
    entries: list[SheetEntry],
    *,
    title: str,
    summary: list[tuple[str, str]],
    timeline: Sequence[Moment] = (),
) -> Path:
    """Write ``folder/index.html`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    page = render_contact_sheet(entries, title=title, summary=summary, timeline=timeline)
    path.write_text(page, encoding="utf-8")
    return path


def render_contact_sheet(
    entries: list[SheetEntry],
    *,
    title: str,
    summary: list[tuple[str, str]],
    timeline: Sequence[Moment] = (),
) -> str:
    """The page; ``timeline`` (the function's own counts, over the run) adds a chart of calls,
    failures and spend below the summary."""
    failed = sum(entry.failed for entry in entries)
    plural = "" if len(entries) == 1 else "s"
    counts = f"{len(entries)} input{plural} · {len(entries) - failed} done · {failed} failed"
    rows = "\n".join(
        f'      <tr><th scope="row">{_text(label)}</th><td>{_text(value)}</td></tr>'
        for label, value in summary
    )
    cards = "\n".join(_card(entry) for entry in entries) or '    <p class="empty">No inputs.</p>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_text(title)}</title>
<style>{_CSS}{CHART_CSS}</style>
</head>
<body>
<main>
  <header class="top">
    <h1>{_text(title)}</h1>
    <p class="counts">{_text(counts)}</p>
  </header>
  <table class="summary">
    <tbody>
{rows}
    </tbody>
  </table>
{render_run_chart(timeline)}
  <div class="cards">
{cards}
  </div>
</main>
</body>
</html>
"""


def _card(entry: SheetEntry) -> str:
    status = (
        f'<span class="badge bad">{_text(entry.error_class or "no output")}</span>'
        if entry.failed
        else '<span class="badge good">done</span>'
    )
    prompt = (
        f'<p class="prompt">{_text(entry.prompt)}</p>'
        if entry.prompt
        else '<p class="prompt none">no prompt</p>'
    )
    error = ""
    if entry.failed:
        message = entry.error_message or "The pipeline produced no output for this input."
        error = (
            f'\n      <div class="error"><code>{_text(entry.error_class or "unknown")}</code>'
            f"<p>{_text(message)}</p></div>"
        )
    classes = "card" + (" failed" if entry.failed else "") + (" wide" if entry.variants else "")
    input_label = "Input, as stored" if entry.input_as_stored_path else "Input"
    output_label = "Variant 1" if entry.variants else "Output"
    figures = [
        _figure(
            entry.input_path,
            input_label,
            entry.name,
            "not an image",
            entry.input_facts,
            shown=entry.input_as_stored_path,
        ),
        _figure(entry.output_path, output_label, entry.name, "no output", entry.output_facts),
        *(_variant_figure(entry.name, variant) for variant in entry.variants),
    ]
    pictures = "\n        ".join(figures)
    return f"""    <section class="{classes}">
      <div class="head"><h2 title="{_text(entry.name)}">{_text(entry.name)}</h2>{status}</div>
      {prompt}
      <div class="pair{" many" if entry.variants else ""}">
        {pictures}
      </div>{_notes(entry)}{_renditions(entry)}{error}
    </section>"""


def _variant_figure(name: str, variant: VariantShot) -> str:
    label = f"Variant {variant.number}"
    prompt = f'<p class="prompt small">{_text(variant.prompt)}</p>' if variant.prompt else ""
    return _figure(variant.output_path, label, name, "no output", variant.facts, caption_extra=prompt)


def _notes(entry: SheetEntry) -> str:
    if not entry.input_notes:
        return ""
    given = _chips(entry.input_notes)
    if entry.output_notes:
        kept = f'<p class="kept">its outputs still carry</p>{_chips(entry.output_notes)}'
    elif entry.output_path:
        kept = '<p class="gone">its outputs: none of it</p>'
    else:
        kept = ""
    return f'\n      <div class="notes"><p>The input carried</p>{given}{kept}</div>'


def _chips(notes: tuple[str, ...]) -> str:
    return "<ul>" + "".join(f"<li>{_text(note)}</li>" for note in notes) + "</ul>"


def _renditions(entry: SheetEntry) -> str:
    shots = [(1, shot) for shot in entry.renditions] + [
        (variant.number, shot) for variant in entry.variants for shot in variant.renditions
    ]
    if not shots:
        return ""
    with_variant = bool(entry.variants)
    figures = "\n          ".join(
        _rendition_figure(entry.name, shot, f"variant {number} · " if with_variant else "")
        for number, shot in shots
    )
    return f"""
      <div class="renditions">
        <h3>Renditions <span>written beside the result, no paid call</span></h3>
        <div class="strip">
          {figures}
        </div>
      </div>"""


def _rendition_figure(name: str, shot: RenditionShot, prefix: str) -> str:
    link = _link(shot.path)
    return (
        f'<figure class="rendition"><a href="{link}"><img src="{link}" '
        f'alt="Rendition {_text(shot.name)}: {_text(name)}" loading="lazy"></a>'
        f"<figcaption><b>{_text(prefix + shot.name)}</b><span>{_text(shot.facts)}</span></figcaption>"
        "</figure>"
    )


def _figure(
    path: str | None,
    label: str,
    name: str,
    missing: str,
    facts: PictureFacts | None = None,
    shown: str | None = None,
    caption_extra: str = "",
) -> str:
    """``path``'s picture, linked; ``shown`` (another picture) in its place when given."""
    if path is None:
        return (
            f'<figure><div class="missing">{_text(missing)}</div>'
            f"<figcaption>{_text(label)}</figcaption>{caption_extra}</figure>"
        )
    link = _link(path)
    detail = f"<span>{_text(facts)}</span>" if facts else ""
    return (
        f'<figure><a href="{link}"><img src="{_link(shown or path)}" alt="{_text(label)}: {_text(name)}" '
        f'loading="lazy"></a><figcaption>{_text(label)}{detail}</figcaption>{caption_extra}</figure>'
    )


def _link(path: str) -> str:
    return _text(quote(path.replace("\\", "/"), safe="/"))


def _size(count: int) -> str:
    """Bytes as people read them: "812 B", "38.4 KB", "1.2 MB" (1 KB = 1,000 bytes)."""
    if count < 1000:
        return f"{count} B"
    if count < 1_000_000:
        return f"{count / 1000:.1f} KB"
    return f"{count / 1_000_000:.1f} MB"


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


_CSS = """
  :root { color-scheme: light; --ink: #1d2330; --muted: #687083; --line: #e3e6ec; --bad: #c0392b;
          --good: #1e8449; --paper: #ffffff; --back: #f4f5f8; }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--back); color: var(--ink);
         font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
  main { max-width: 1240px; margin: 0 auto; padding: 28px 20px 40px; }
  .top { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between;
          column-gap: 16px; }
  h1 { font-size: 24px; margin: 0 0 14px; letter-spacing: -0.01em; }
  .counts { margin: 0; color: var(--muted); }
  table.summary { border-collapse: collapse; background: var(--paper); border: 1px solid var(--line);
                  border-radius: 8px; overflow: hidden; margin-bottom: 24px; width: 100%; max-width: 640px; }
  .summary th, .summary td { padding: 7px 14px; border-bottom: 1px solid var(--line); text-align: left; }
  .summary tr:last-child th, .summary tr:last-child td { border-bottom: 0; }
  .summary th { font-weight: 500; color: var(--muted); background: #fafbfc; }
  .summary td { font-variant-numeric: tabular-nums; font-weight: 600; overflow-wrap: anywhere; }
  /* Two cards side by side from about 1,150 px, one below 600 px; never wider than the window. */
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 560px), 1fr));
           gap: 18px; grid-auto-flow: dense; }
  .card { background: var(--paper); border: 1px solid var(--line); border-radius: 10px;
          padding: 14px 16px 16px; box-shadow: 0 1px 2px rgba(20, 30, 50, 0.05); min-width: 0; }
  .card.failed { border-left: 5px solid var(--bad); }
  .head { display: flex; align-items: center; justify-content: space-between; gap: 12px; min-width: 0; }
  h2 { font: 600 14px/1.3 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin: 0;
       overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; }
  .badge { flex: none; font-size: 12px; font-weight: 600; padding: 2px 9px; border-radius: 999px; }
  .badge.good { color: var(--good); background: #e6f4ea; }
  .badge.bad { color: var(--bad); background: #fdecea;
               font-family: ui-monospace, Menlo, Consolas, monospace; }
  .prompt { margin: 6px 0 10px; color: #3b4252; overflow-wrap: anywhere; }
  .prompt::before { content: "“"; } .prompt::after { content: "”"; }
  .prompt.none { color: var(--muted); font-style: italic; }
  .prompt.none::before, .prompt.none::after { content: ""; }
  .pair { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
  figure { margin: 0; min-width: 0; }
  figure img, .missing { display: block; width: 100%; height: 220px; border-radius: 6px;
                         background: #eceef2; }
  figure img { object-fit: contain; }
  .missing { display: flex; align-items: center; justify-content: center; color: var(--muted);
             border: 2px dashed #d5d9e1; background: #f8f9fb; font-style: italic; }
  figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; text-transform: uppercase;
               letter-spacing: 0.06em; overflow-wrap: anywhere; }
  figcaption span { display: block; text-transform: none; letter-spacing: 0;
                    font-variant-numeric: tabular-nums; }
  /* A pair with variants takes the whole row: its input and every variant side by side. */
  .card.wide { grid-column: 1 / -1; }
  .pair.many { grid-template-columns: repeat(auto-fit, minmax(min(100%, 150px), 1fr)); }
  .prompt.small { font-size: 12px; margin: 4px 0 0; }
  .notes { margin-top: 10px; font-size: 12px; color: var(--muted); }
  .notes p { display: inline; margin: 0 6px 0 0; }
  .notes ul { display: inline; margin: 0; padding: 0; list-style: none; }
  .notes .gone { color: var(--good); font-weight: 600; }
  .notes .kept { color: var(--bad); font-weight: 600; }
  .notes li { display: inline-block; margin: 2px 6px 2px 0; padding: 1px 8px; border-radius: 999px;
              background: #eef1f6; color: var(--ink); }
  .renditions { margin-top: 12px; border-top: 1px solid var(--line); padding-top: 10px; }
  .renditions h3 { font-size: 13px; margin: 0 0 8px; }
  .renditions h3 span { font-weight: 400; color: var(--muted); margin-left: 6px; }
  .strip { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 150px), 1fr));
           gap: 10px; }
  figure.rendition img { height: 120px; }
  figure.rendition b { display: block; color: var(--ink); }
  .error { margin-top: 12px; padding: 10px 12px; border-radius: 6px; background: #fdecea; color: #7b1f16; }
  .error code { font: 600 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--bad); }
  .error p { margin: 4px 0 0; overflow-wrap: anywhere; white-space: pre-wrap; }
  .empty { color: var(--muted); }
  /* Phones: less padding, shorter pictures, and the summary's labels above their values. */
  @media (max-width: 600px) {
    main { padding: 16px 10px 28px; }
    h1 { font-size: 20px; }
    .card { padding: 12px 12px 14px; }
    .pair { gap: 8px; }
    figure img, .missing { height: 150px; }
    .summary th, .summary td { padding: 6px 10px; }
  }
"""
