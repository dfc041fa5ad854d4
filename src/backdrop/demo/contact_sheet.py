"""A contact sheet for the demo: one self-contained HTML page, each input beside its output.

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
class SheetEntry:
    name: str  # the input key, e.g. "shop/coffee.jpg"
    input_path: (
        str | None
    )  # path of the input image relative to the sheet's folder, or None when not an image
    output_path: str | None  # path of the output image relative to the sheet's folder; None on failure
    prompt: str | None
    error_class: str | None = None
    error_message: str | None = None

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
    return f"""    <section class="card{" failed" if entry.failed else ""}">
      <div class="head"><h2 title="{_text(entry.name)}">{_text(entry.name)}</h2>{status}</div>
      {prompt}
      <div class="pair">
        {_figure(entry.input_path, "Input", entry.name, "not an image")}
        {_figure(entry.output_path, "Output", entry.name, "no output")}
      </div>{error}
    </section>"""


def _figure(path: str | None, label: str, name: str, missing: str) -> str:
    if path is None:
        return (
            f'<figure><div class="missing">{_text(missing)}</div>'
            f"<figcaption>{_text(label)}</figcaption></figure>"
        )
    link = _text(quote(path.replace("\\", "/"), safe="/"))
    return (
        f'<figure><a href="{link}"><img src="{link}" alt="{_text(label)}: {_text(name)}" loading="lazy"></a>'
        f"<figcaption>{_text(label)}</figcaption></figure>"
    )


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
           gap: 18px; }
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
               letter-spacing: 0.06em; }
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
