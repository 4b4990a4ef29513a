"""The HW3 report: execute the notebooks, assemble the tagged cells, export HTML and PDF.

``python -m hw3lib report [--notebooks DIR] [--out DIR] [--no-execute] [--timeout S]`` executes
``notebooks/0[1-6]_*.ipynb`` from scratch (in this Python's kernel, working directory
``notebooks/``, ``HW3_DATA`` made absolute), keeps the executed copies in ``report/build/``,
assembles one report notebook from their tagged cells and writes ``report/hw3_report.html``
(code hidden, figures embedded, equations as MathML: no JavaScript, nothing fetched) and
``report/hw3_report.pdf`` (A4, printed by Debian's headless Chromium).

Contract with the notebook authors (one tag per cell, in the cell's ``tags`` metadata):

==================  =====================================================================
``report:summary``  the summary on the first page: the results in a few sentences
``report:1``        1. the CNN implementation (architecture table, Conv2D, im2col/col2im)
``report:2``        2. the loss function and AdamGD (formulas, the bias-correction finding)
``report:3``        3. results and images (curves, accuracy/loss table, confusion matrix, ...)
``report:4``        4. the problem met and its solution (naive loops against im2col, timings)
``report:stamp``    the reproducibility stamp, after the rows the export writes itself
==================  =====================================================================

- A tagged markdown cell is kept as narrative; its headings move down so that they sit under
  the section titles (``<h2>``): the shallowest heading of all tagged cells becomes ``<h3>``
  (``#`` or ``##`` alike), the others keep their depth below it.
- A tagged code cell shows its outputs only, never its code; it must have an output.
- Cells go to their section in notebook order (01 to 06), then cell order.
- The export refuses, naming the notebook and cell: a cell that raises while executing (with
  ``--no-execute``, a stored error output in any cell), and in a tagged cell an error output,
  a traceback, text on stderr (warnings), a widget (it would print as blank space) or an
  absolute path; a bare ``report`` tag, a misspelt one (``Report:3``,
  ``report-3``: otherwise left out without a word) or an unknown section; a
  section without cells.
- With ``--no-execute`` the export warns (``warning: ...``) naming the first code cell of a
  notebook that its stored run did not run, or ran out of order.
- The export warns (``warning: ...``, naming the notebook and cell) where a notebook's check of
  the figures its text quotes (:func:`hw3lib.results.quoted_figures`) finds figures its run no
  longer gives (changed settings, code or data): the report is written, and that text is stale.
- In the PDF, an equation, text output or table wider than the page is shrunk to fit; text
  output to 80% at most (:data:`TEXT_FLOOR`), where lines still too long wrap (paths break
  anywhere), a table to 60% (:data:`TABLE_FLOOR`), where its cells wrap.
- Chinese text (the original report's headings) is marked ``lang="zh-Hant"``, run by run, in a
  page whose language stays English: screen readers and fonts treat each as what it is.
"""
import asyncio
import contextlib
import copy
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat

from .atomic import atomic_write
from .cli import Parser, create_out, folder, int_at_least, refuse_file_in_the_way
from .download import download
from .folders import REPO_ROOT, resolve_root, split_folders
from .results import STALE_FIGURES
from .stamp import stamp_rows

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
OUT_DIR = REPO_ROOT / "report"
NOTEBOOK_GLOB = "0[1-6]_*.ipynb"
REPORT_NAME = "hw3_report"
TITLE = "HW3: CNN implementation · CNN 實作"
# The input of notebook 06's runs, whose results the report shows: its TrainConfigs leave mode
# ("L") and image_size (the images' own, 32x32) alone (tests/test_report.py holds them to it).
INTRO = ("A LeNet-5 convolutional network written from scratch in NumPy and trained on three "
         "fruit classes (Carambula, Lychee, Pear) of 32×32 images, fed to it as one grey "
         "channel. ")
PROVENANCE = {  # executed -> where the numbers come from, said after INTRO
    True: "The notebooks 01 to 06 were executed from scratch by `python -m hw3lib report`; every "
          "number, table and figure below comes from that run.",
    False: "The notebooks 01 to 06 were not executed for this report: every number, table and "
           "figure below is an output stored in them (`python -m hw3lib report --no-execute`).",
}
TAG_PREFIX = "report:"
SECTIONS = {  # tag suffix -> section title: a summary, then the original report's order
    "summary": "Summary · 摘要",
    "1": "1. The CNN implementation · CNN 實作",
    "2": "2. The loss function and AdamGD · 損失函數與 AdamGD",
    "3": "3. Results and images · 結果與圖片",
    "4": "4. The problem met and its solution · 遇到的問題與解決方法",
    "stamp": "Reproducibility · 可重現性",
}
CHROMIUM_NAMES = ("chromium", "chromium-browser")
PDF_INSTALL = ("sudo apt-get install -y --no-install-recommends chromium fonts-liberation "
               "fonts-dejavu-extra fonts-noto-cjk")
DEFAULT_TIMEOUT = 1800  # seconds per cell: training is the slowest cell

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_TRACEBACK = "Traceback (most recent call last)"
_WARNING = re.compile(r"^.+?:\d+: ([\w.]+: .*)$", re.MULTILINE)  # FILE:LINE: CATEGORY: MESSAGE
# An absolute POSIX path (a '/' after a space, quote, bracket, '=' or ':' or at a line start,
# then at least one more '/': URLs do not match) or a Windows drive path.
_ABSOLUTE_PATH = re.compile(r"(?:^|(?<=[\s'\"(\[=:,]))(?:/[\w.~+-]+/[\w./~+-]*|[A-Za-z]:\\\w)",
                            re.MULTILINE)


class ReportError(ValueError):
    """The report cannot be built; the message names the notebook, the cell and the fix."""


def find_notebooks(folder):
    """The notebooks ``folder/0[1-6]_*.ipynb`` in order; at least one must exist."""
    paths = sorted(Path(folder).glob(NOTEBOOK_GLOB))
    if not paths:
        raise ReportError(f"no notebooks matching {NOTEBOOK_GLOB} in {folder}; "
                          "pass the folder that holds them with --notebooks")
    return paths


def read_notebook(path):
    """The notebook at ``path`` (as version 4); :class:`ReportError` naming it where it does not
    read as one (not JSON, cut short, not a notebook's structure)."""
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 -- nbformat raises ValueError, ValidationError, ...
        said = (str(err).splitlines() or [""])[0][:200]
        raise ReportError(f"{path} does not read as a notebook ({type(err).__name__}: {said}); "
                          "restore it (git checkout) or save it again from JupyterLab") from None


def _where(name, index, cell):
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    return f"{name}, cell {index} ({first[:50]!r})"


def _run_interruptibly(coroutine, on_interrupt):
    """Run ``coroutine`` in a thread of its own and return its result. There asyncio (nbclient)
    cannot take SIGINT and SIGTERM over, so they stay with this thread: a KeyboardInterrupt
    here calls ``on_interrupt()``, cancels the coroutine, waits for its clean-up and is
    re-raised, whatever the coroutine raised meanwhile."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(coroutine)
    done = threading.Event()  # not Thread.join: an interrupted join can return early later

    async def run_to_the_end():  # a cancelled nbclient leaves tasks of its own: end them too
        try:
            await task
        finally:
            left = asyncio.all_tasks() - {asyncio.current_task()}
            for other in left:
                other.cancel()
            await asyncio.gather(*left, return_exceptions=True)

    def run():
        try:
            loop.run_until_complete(run_to_the_end())
        except BaseException:  # noqa: S110 - task.result() raises it in the caller
            pass
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    try:
        done.wait()
    except KeyboardInterrupt:
        on_interrupt()
        loop.call_soon_threadsafe(task.cancel)
        done.wait()
        raise
    finally:
        loop.close()
    return task.result()


def execute_notebook(path, build_dir, timeout=DEFAULT_TIMEOUT, env=None):
    """Execute the notebook at ``path`` from scratch in this Python's kernel, with the
    notebook's folder as working directory and ``env`` as environment (default: this process's);
    write the executed copy to ``build_dir`` and return it. A failing cell raises
    :class:`ReportError` naming it. The kernel is shut down and its connection file removed,
    also when Ctrl-C or SIGTERM (a KeyboardInterrupt, re-raised) stops the execution."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from traitlets import default

    class CurrentPython(KernelSpecManager):
        """Every kernel name means ipykernel in this interpreter (this virtual environment)."""

        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                    "{connection_file}", "--IPKernelApp.log_level=ERROR"],
                              display_name="Python (hw3lib)", language="python")

    class CurrentPythonKernel(AsyncKernelManager):
        """A kernel manager of :class:`CurrentPython`; given as a class, not an instance, so that
        nbclient owns it: it shuts the kernel down and removes its connection file."""

        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self):
            return CurrentPython(data_dir=self.data_dir)

    path = Path(path)
    nb = read_notebook(path)
    current = {}
    client = NotebookClient(
        nb, timeout=timeout, kernel_manager_class=CurrentPythonKernel,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=lambda cell, cell_index: current.update(cell=cell, index=cell_index + 1))
    at = lambda: _where(path.name, current["index"], current["cell"])  # noqa: E731

    async def execute():
        try:
            await client.async_execute(env=dict(os.environ) if env is None else env)
        finally:  # nbclient shuts its kernel down, unless cancelled while starting it
            if client.km is not None and client.km.has_kernel:
                await client.km.shutdown_kernel(now=True)

    def kill_kernel_at_once():  # no graceful shutdown (and no ZMQ traceback) mid-cell
        client.shutdown_kernel = "immediate"

    try:
        _run_interruptibly(execute(), on_interrupt=kill_kernel_at_once)
    except CellExecutionError as err:
        raise ReportError(f"{at()} raised {err.ename}: {err.evalue}; run the notebook in "
                          "JupyterLab to see the traceback and fix it") from None
    except CellTimeoutError:
        raise ReportError(f"{at()} ran longer than {timeout} s; raise the limit with "
                          "--timeout") from None
    except DeadKernelError:
        raise ReportError(f"the kernel died in {at()} (out of memory?); run the notebook in "
                          "JupyterLab to find out") from None
    build_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, build_dir / path.name)
    return nb


def _output_text(output):
    """The text a reader would see of one output (images excluded)."""
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return "\n".join(value if isinstance(value, str) else "\n".join(value)
                     for mime, value in output.get("data", {}).items() if mime.startswith("text/"))


def _check_cell(where, cell):
    """Raise :class:`ReportError` when the tagged ``cell`` would show something a reader must
    never see, or nothing at all."""
    if cell.cell_type == "markdown":
        texts = [cell.source]
    elif cell.cell_type == "code":
        if not cell.outputs:
            raise ReportError(f"{where} is tagged for the report but has no output (a figure "
                              "needs plt.show()); run the notebook or remove the tag")
        texts = []
        for output in cell.outputs:
            if output.output_type == "error":
                raise ReportError(f"{where} shows an error ({output.ename}: {output.evalue}); "
                                  "fix the cell")
            if output.output_type == "stream" and output.name == "stderr":
                warning = _WARNING.search(output.text)  # the warning, not the file that warned
                said = warning.group(1) if warning else output.text.strip()
                raise ReportError(f"{where} writes to stderr ({said[:120]!r}); "
                                  "fix the cause of the warning or move it out of the report")
            if _WIDGET_MIME in output.get("data", {}):
                raise ReportError(f"{where} shows a widget, which a static report prints as "
                                  "blank space; keep widgets and progress bars out of the report")
            texts.append(_output_text(output))
    else:
        raise ReportError(f"{where} is a {cell.cell_type} cell; tag only markdown and code cells")
    for text in texts:
        if _TRACEBACK in text:
            raise ReportError(f"{where} shows a traceback; fix the cell")
        found = _ABSOLUTE_PATH.search(text)
        if found:
            raise ReportError(f"{where} shows the absolute path {found.group()!r}; print paths "
                              "relative to the repository (or not at all)")


# A markdown cell that starts with one of these (the notebooks write its label in bold) captions
# the output above it: tagged "caption", it is printed on the same page (a table's caption too, not
# only a figure's), its first paragraph smaller than the text.
CAPTION_STARTS = ("Table:", "Figure:")


def _caption(cells, index):
    """The first paragraph of the markdown cell after ``cells[index]`` as one line of text
    (its lines joined, ``*emphasis*`` and ``code`` marks and the ``$`` and ``\\`` of LaTeX
    dropped: a screen reader reads ``$f = \\alpha x$`` as "f = alpha x"), else ``"Figure"``."""
    after = cells[index + 1] if index + 1 < len(cells) else None
    source = after.source.strip() if after and after.cell_type == "markdown" else ""
    paragraph = " ".join(source.split("\n\n")[0].split())
    text = re.sub(r"\*+([^*]+?)\*+", r"\1", paragraph).replace("`", "")
    return re.sub(r"\\([A-Za-z]+)", r"\1", text.replace("$", "")) or "Figure"


def _report_tag(tag):
    """Whether ``tag`` is a report tag or a slip for one (``report``, ``Report:3``, ``report-3``)
    that would otherwise leave its cell out of the report without a word."""
    return isinstance(tag, str) and tag.strip().lower().startswith(TAG_PREFIX.rstrip(":"))


def report_cells(name, nb):
    """Copies of the cells of ``nb`` (named ``name`` in messages) tagged for the report,
    checked, as ``{section: [cell, ...]}`` in cell order. Each PNG output gets the caption
    below it as alternative text (``output.metadata["alt"]``)."""
    sections, known = {}, [TAG_PREFIX + key for key in SECTIONS]
    for index, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if isinstance(tags, str):  # a hand edit: one tag where a list of them goes
            raise ReportError(f"{_where(name, index + 1, cell)} has the tags {tags!r}, a string "
                              f"where a list goes; write them as [{tags!r}]")
        tags = [t for t in tags if _report_tag(t)]  # slips ("report", "Report:3") included
        if not tags:
            continue
        where = _where(name, index + 1, cell)
        if len(tags) > 1 or tags[0] not in known:
            raise ReportError(f"{where} has the tags {tags}; give it one of " + ", ".join(known))
        _check_cell(where, cell)
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown" and cell.source.lstrip(" \n*_").startswith(CAPTION_STARTS):
            cell.metadata["tags"] = [*tags, "caption"]
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                output.metadata["alt"] = _caption(nb.cells, index)
        sections.setdefault(tags[0][len(TAG_PREFIX):], []).append(cell)
    return sections


def check_stored_run(name, nb):
    """Raise :class:`ReportError` where a code cell of ``nb`` (named ``name``), tagged or not,
    holds an error output (but one tagged ``raises-exception``, as executing allows): its stored
    run failed there, so the outputs after it are not those of one whole run. For
    ``--no-execute``, which exports the stored outputs as they are; executing refuses the same."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                raise ReportError(
                    f"{_where(name, index + 1, cell)} holds an error from the notebook's last run "
                    f"({output.get('ename')}: {output.get('evalue')}), so its stored outputs are "
                    "not those of a whole run; fix the cell and run the notebook again (Restart "
                    "and Run All), or export without --no-execute")


def out_of_order(name, nb):
    """``"NAME, cell N (...): ..."`` for the first code cell of ``nb`` (named ``name``) that its
    stored run did not run, or ran out of order (an execution count not above the one before):
    its outputs, and those after it, may not be those of one whole run from the top. Empty cells
    (never run) and cells tagged ``skip-execution`` aside."""
    last = 0
    for index, cell in enumerate(nb.cells):
        if (cell.cell_type != "code" or not cell.source.strip()
                or "skip-execution" in cell.get("metadata", {}).get("tags", [])):
            continue
        count = cell.get("execution_count")
        if count is None or count <= last:
            said = ("was not run" if count is None else
                    f"was run out of order (execution count {count}, after {last})")
            return [f"{_where(name, index + 1, cell)} {said} in the stored outputs: they may not "
                    "be those of one whole run; Restart and Run All, or export without "
                    "--no-execute"]
        last = count
    return []


def stale_text(name, nb):
    """``"NAME, cell N (...): The text quotes figures ..."`` for each output of ``nb`` (named
    ``name``) in which :func:`hw3lib.results.quoted_figures` says that the notebook's text
    quotes figures its run no longer gives (run with other settings, code or data)."""
    return [f"{_where(name, index + 1, cell)}: {line.strip()}"
            for index, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.output_type == "stream"
            for line in output.text.splitlines() if line.startswith(STALE_FIGURES)]


def _markdown(source):
    return nbformat.v4.new_markdown_cell(source, metadata={"tags": []})


def assemble(notebooks, stamp, executed=True):
    """One report notebook from ``notebooks`` (``[(name, nb), ...]`` in order) and the stamp
    rows: title, the summary, the four sections, the stamp; the introduction says whether the
    notebooks were ``executed`` for it. Raises :class:`ReportError` for an empty section."""
    sections = {key: [] for key in SECTIONS}
    for name, nb in notebooks:
        for key, cells in report_cells(name, nb).items():
            sections[key].extend(cells)
    empty = [TAG_PREFIX + key for key, cells in sections.items() if not cells and key != "stamp"]
    if empty:
        raise ReportError(f"no cells are tagged {', '.join(empty)} in "
                          f"{', '.join(name for name, _ in notebooks)}; every section of the "
                          "report needs at least one (see hw3lib/report.py)")
    table = "".join(f"<tr><th>{html.escape(what)}</th><td>{html.escape(value)}</td></tr>"
                    for what, value in stamp)
    cells = [_markdown(f'<h1 id="title">{TITLE}</h1>\n\n{INTRO}{PROVENANCE[executed]}')]
    for key, title in SECTIONS.items():
        # the sections run on, page after page: a section that started a page of its own left
        # the page before it up to 85% empty (section 2's last five lines alone on one)
        cells.append(_markdown(f'<h2 id="section-{key}">{title}</h2>'))
        if key == "stamp":
            cells.append(_markdown(f"<table>{table}</table>"))
        cells.extend(sections[key])
    report = nbformat.v4.new_notebook(cells=cells)
    report.metadata.update(title=TITLE, language_info={"name": "python"})
    return report


REPORT_CSS = """
@page { size: A4; margin: 16mm 15mm 18mm 15mm;
        @bottom-center { content: counter(page) " / " counter(pages); font-size: 8pt;
                         color: #666; } }
:root { --jp-content-font-family: "Liberation Sans", "Noto Sans CJK TC", sans-serif;
        --jp-code-font-family: "DejaVu Sans Mono", "Noto Sans Mono CJK TC", monospace;
        --jp-content-font-size1: 10.5pt; --jp-code-font-size: 8.5pt; }
body.jp-Notebook { padding: 0; max-width: 50em; margin: 0 auto; }
.jp-Cell { padding: 0; }
h1, h2, h3, h4, h5, h6 { break-after: avoid; break-inside: avoid; }
.jp-RenderedHTMLCommon h1 { font-size: 20pt; margin-top: 0; }
.jp-RenderedHTMLCommon h2 { font-size: 15pt; border-bottom: 1px solid #999; padding-bottom: 2pt; }
.jp-RenderedHTMLCommon h3 { font-size: 12.5pt; }
.jp-RenderedHTMLCommon h4 { font-size: 11pt; }
.jp-RenderedHTMLCommon > :last-child { margin-bottom: 0; }
/* one cell's end to the next's start: a paragraph's gap (1em of 10.5 pt), as between two
   paragraphs of one cell, not none (prose ran on from the cell before) */
.jp-Cell + .jp-Cell { margin-top: 10.5pt; }
.jp-Cell + .jp-Cell:has(.celltag_caption, .jp-RenderedHTMLCommon > :is(h2, h3, h4, h5, h6):first-child) {
  margin-top: 0; } /* a caption stays close, a heading has its own margin */
.jp-RenderedHTMLCommon p { break-inside: avoid; }
img { max-width: 100%; height: auto; break-inside: avoid; }
.jp-CodeCell:has(img) + .jp-MarkdownCell { break-before: avoid; } /* a caption stays with its figure */
.celltag_caption { break-before: avoid; } /* and a table's with its table */
.celltag_caption > p:first-child { font-size: 9.5pt; } /* the caption: celltag_ marks the cell's rendered markdown */
.jp-OutputArea-output, .jp-Cell-outputWrapper, math[display="block"] { break-inside: avoid; }
.jp-RenderedHTMLCommon table { width: auto; max-width: 100%; font-size: 9pt; break-inside: avoid;
  margin-left: 0; } /* at the text's margin, as the printed tables are, not Jupyter's centred */
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { overflow-wrap: break-word; }
.jp-RenderedHTMLCommon td:first-child, .jp-RenderedHTMLCommon th:first-child { text-align: left; }
.jp-RenderedText pre { white-space: pre; overflow-x: auto; }
math { font-family: "DejaVu Math TeX Gyre", math; font-size: 1.1em; }
math[display="block"] { margin: 0.6em 0; overflow-x: auto; }
@media print { /* no scroll bars on paper: FIT_TO_WIDTH shrinks what is too wide */
  .jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output, .jp-RenderedText pre, math {
    overflow: visible !important; }
  .jp-RenderedText pre { /* what is too wide at TEXT_FLOOR wraps at spaces, paths anywhere */
    white-space: pre-wrap; word-break: normal; overflow-wrap: anywhere; } }
mtd[columnalign="left"] { text-align: left; }
mtd[columnalign="right"] { text-align: right; }
"""

_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<style type="text/css">{{ resources.report_css }}</style>
{%- endblock html_head_css -%}
{%- block data_png scoped -%}
<div class="jp-RenderedImage jp-OutputArea-output">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
     alt="{{ output.metadata.alt | escape_html }}">
</div>
{%- endblock data_png -%}
"""


def latex_to_mathml(latex, display):
    """MathML for a LaTeX formula, ``display`` ``"block"`` or ``"inline"``; Chromium and
    Firefox render it without JavaScript. ``aligned`` is read as ``align*``."""
    from latex2mathml.converter import convert

    source = latex.replace("{aligned}", "{align*}")
    try:
        mathml = convert(source, display=display)
        ET.fromstring(mathml)
        unknown = re.search(r">(\\[A-Za-z]+)<", mathml)  # latex2mathml prints these as text
        if unknown:
            raise ValueError(f"unknown command {unknown.group(1)}")
    except Exception as err:  # latex2mathml raises many kinds, the XML parser its own
        raise ReportError(f"cannot convert the equation {latex!r} to MathML ({err}); "
                          "write it with simpler LaTeX") from None
    return mathml


_FENCED_CODE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.MULTILINE | re.DOTALL)
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]|$)", re.MULTILINE)


def top_heading_level(nb):
    """The level (1-6) of the shallowest markdown heading in the markdown cells of ``nb``
    (``#`` in fenced code is no heading), else 3."""
    return min((len(marks) for cell in nb.cells if cell.cell_type == "markdown"
                for marks in _ATX_HEADING.findall(_FENCED_CODE.sub("", cell.source))), default=3)


# Chinese characters: CJK symbols and punctuation, bopomofo, Han ideographs (extension A, the
# unified block, compatibility, the supplementary planes), full-width forms; a run may hold spaces.
_HAN = ("\u3000-\u303f\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60"
        "\U00020000-\U0003134f")
# markup to leave alone (a tag, a comment, a script or style with its content), else a Chinese run
_MARKUP_OR_CHINESE = re.compile(
    rf"(<(script|style)\b.*?</\2\s*>|<!--.*?-->|<[^>]*>)|[{_HAN}]+(?:\s+[{_HAN}]+)*", re.S | re.I)


def mark_chinese(page):
    """``page`` with each run of Chinese text in its body wrapped in ``<span lang="zh-Hant">``
    (attributes, comments, scripts and styles left as they are)."""
    head, body = page.split("<body", 1)
    body = _MARKUP_OR_CHINESE.sub(
        lambda m: m.group(1) or f'<span lang="zh-Hant">{m.group()}</span>', body)
    return f"{head}<body{body}"


def to_html(nb, notebooks_dir):
    """The report notebook ``nb`` as one self-contained HTML page (code hidden, images as
    base64, math as MathML, Chinese marked by :func:`mark_chinese`); relative image links
    resolve against ``notebooks_dir``."""
    from jinja2 import DictLoader, pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    shift = 3 - top_heading_level(nb)  # the shallowest heading goes right under the <h2>

    class Renderer(IPythonRenderer):
        """Markdown headings under the sections' <h2> (:func:`top_heading_level`); math as
        MathML."""

        def heading(self, text, level, **attrs):
            return super().heading(text, min(level + shift, 6), **attrs)

        def block_math(self, body):
            return latex_to_mathml(body, "block")

        def latex_environment(self, name, body):
            return latex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block")

        def inline_math(self, body):
            return latex_to_mathml(body, "inline")

    class Exporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            renderer = Renderer(escape=False, attachments=cell.get("attachments", {}),
                                embed_images=True, path=str(notebooks_dir),
                                exclude_anchor_links=True, **self.lexer_options)
            return MarkdownWithMath(renderer=renderer).render(source)

    exporter = Exporter(extra_loaders=[DictLoader({"hw3_report.html.j2": _TEMPLATE})],
                        template_file="hw3_report.html.j2", exclude_input=True,
                        exclude_input_prompt=True, exclude_output_prompt=True,
                        exclude_anchor_links=True, embed_images=True)
    page, _ = exporter.from_notebook_node(nb, resources={
        "metadata": {"name": REPORT_NAME, "path": str(notebooks_dir)}, "report_css": REPORT_CSS})
    linked = re.findall(r'<img[^>]*\ssrc="(?!data:)([^"]*)"', page)
    if linked:
        raise ReportError(f"images {linked} could not be embedded; put them next to the "
                          "notebooks or attach them to the markdown cell")
    return mark_chinese(page)


# Text output shrinks to 80% at most: code is 8.5 pt, so 6.8 pt, about a footnote's size (60%,
# 5.1 pt, is too small to read). A4 less 15 mm margins holds the page's 650 px column: 94
# characters of 8.5 pt DejaVu Sans Mono (0.602 em each) in an output, 117 at 80%; the notebooks'
# widest output line has 97. A table (9 pt) shrinks to 60%: wrapping its cells breaks words.
TEXT_FLOOR, TABLE_FLOOR = 0.8, 0.6
# Run in the copy that Chromium prints, before the print CSS applies (the scripts see the screen's
# layout): shrink each equation, text output or table wider than its column to fit; text output
# to TEXT_FLOOR at most (the print CSS wraps what is still too wide), a table to TABLE_FLOOR at
# most (its cells wrapped).
# The HTML itself has no JavaScript.
FIT_TO_WIDTH = f"<script>\nconst TEXT = {TEXT_FLOOR}, TABLE = {TABLE_FLOOR};\n" + """\
for (const el of document.querySelectorAll(
    'math[display="block"], .jp-RenderedText pre, .jp-RenderedHTMLCommon table')) {
  const box = getComputedStyle(el.parentElement);  // its content width: what fits does not wrap
  const width = el.parentElement.clientWidth - parseFloat(box.paddingLeft)
                - parseFloat(box.paddingRight);
  const fit = width / el.scrollWidth;
  if (fit >= 1) continue;
  if (el.tagName === "PRE") el.style.zoom = Math.max(fit, TEXT).toFixed(3);
  else if (el.tagName === "TABLE" && fit < TABLE) Object.assign(el.style, {  // cells wrapped
    zoom: TABLE, tableLayout: "fixed", maxWidth: "none", overflowWrap: "anywhere",
    width: `${width / TABLE}px`});
  else el.style.zoom = fit.toFixed(3);
}
</script>"""


def find_chromium():
    """The path of Debian's ``chromium`` (or ``chromium-browser``) on PATH, else None."""
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def _kill_group(proc, wait=5.0):
    """Kill ``proc``'s process group (Chromium and its helpers) and wait, up to ``wait``
    seconds, until none of it is left; without process groups (Windows), ``proc`` alone."""
    if not hasattr(os, "killpg"):
        proc.kill()
        proc.wait()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def print_pdf(chromium, html_path, pdf_path, timeout=120):
    """Print ``html_path`` to ``pdf_path`` with headless ``chromium`` (A4 from the page's CSS,
    no browser header or footer, wide blocks shrunk to the width by :data:`FIT_TO_WIDTH`, the
    headings as the PDF's outline: a viewer's bookmarks).
    Chromium prints into a scratch folder, and the PDF is moved into place only when it has
    printed it all: ``pdf_path`` ends up the whole PDF or absent (an old one is removed first)."""
    pdf_path = Path(pdf_path).resolve()
    pdf_path.unlink(missing_ok=True)
    page = Path(html_path).read_text(encoding="utf-8").replace("</body>", FIT_TO_WIDTH + "</body>")
    with tempfile.TemporaryDirectory(prefix="hw3-chromium-") as scratch:
        printed, pdf = Path(scratch, "print.html"), Path(scratch, "print.pdf")
        printed.write_text(page, encoding="utf-8")
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", f"--user-data-dir={scratch}/profile",
               "--no-pdf-header-footer", "--generate-pdf-document-outline",
               f"--print-to-pdf={pdf}", printed.as_uri()]
        # its own session: a Ctrl-C at the terminal reaches this process alone, which ends
        # Chromium and its helpers, writing into scratch, before scratch is removed
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stderr = proc.communicate(timeout=timeout)[1]
        except subprocess.TimeoutExpired:
            raise ReportError(f"{chromium} did not print the PDF within {timeout} s") from None
        finally:  # timed out, or a Ctrl-C or SIGTERM: ended with its helpers; done: as it exited
            if proc.returncode is None:
                _kill_group(proc)
        if proc.returncode or not pdf.is_file() or pdf.stat().st_size == 0:
            tail = "\n".join(stderr.strip().splitlines()[-5:])
            raise ReportError(f"{chromium} failed to print {pdf_path.name} "
                              f"(exit status {proc.returncode}):\n{tail}")
        atomic_write(pdf_path, lambda f: f.write(pdf.read_bytes()))


def build(notebooks_dir=NOTEBOOKS_DIR, out_dir=OUT_DIR, execute=True, timeout=DEFAULT_TIMEOUT,
          data_root=None, require_pdf=False, log=print):
    """Build the report from ``notebooks_dir`` into ``out_dir``; return ``(html_path,
    pdf_path)``, ``pdf_path`` None when Chromium is missing (unless ``require_pdf``).

    ``execute`` runs every notebook from scratch first (its copy goes to ``out_dir/build``),
    with ``HW3_DATA`` set to ``data_root`` when given; otherwise their stored outputs are used.
    """
    notebooks_dir, out_dir = Path(notebooks_dir), Path(out_dir)
    build_dir = out_dir / "build"
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    if data_root is not None:
        env["HW3_DATA"] = str(Path(data_root).resolve())
    notebooks = []
    for path in find_notebooks(notebooks_dir):
        if execute:
            start = time.perf_counter()
            nb = execute_notebook(path, build_dir, timeout, env)
            log(f"executed {path.name} in {time.perf_counter() - start:.1f} s")
        else:
            nb = read_notebook(path)
            check_stored_run(path.name, nb)
        notebooks.append((path.name, nb))
    report = assemble(notebooks, stamp_rows(execute, data_root), executed=execute)
    checks = (stale_text,) if execute else (out_of_order, stale_text)
    for stale in (line for name, nb in notebooks for check in checks for line in check(name, nb)):
        log(f"warning: {stale}")  # exported all the same: the text is the author's to rewrite
    build_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(report, build_dir / f"{REPORT_NAME}.ipynb")
    html_path, pdf_path = out_dir / f"{REPORT_NAME}.html", out_dir / f"{REPORT_NAME}.pdf"
    page = to_html(report, notebooks_dir).encode("utf-8")
    atomic_write(html_path, lambda f: f.write(page))  # the old report or the new, never a part
    log(f"wrote {html_path}")
    chromium = find_chromium()
    if chromium is None:
        pdf_path.unlink(missing_ok=True)  # never leave an old PDF beside a new HTML
        message = f"PDF skipped: Chromium is missing; install it with `{PDF_INSTALL}` and rerun"
        if require_pdf:
            raise ReportError(message.replace("PDF skipped: ", "no PDF: "))
        log(message)
        return html_path, None
    print_pdf(chromium, html_path, pdf_path)
    log(f"wrote {pdf_path}")
    return html_path, pdf_path


def main(argv=None):
    """``python -m hw3lib report``: get the data, execute the notebooks, export the report."""
    parser = Parser(prog="python -m hw3lib report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=folder, default=NOTEBOOKS_DIR, metavar="DIR",
                        help="folder of the notebooks 0[1-6]_*.ipynb (default: notebooks/)")
    parser.add_argument("--out", type=folder, default=OUT_DIR, metavar="DIR",
                        help="folder for hw3_report.html/.pdf and build/ (default: report/)")
    parser.add_argument("--no-execute", action="store_true",
                        help="export the notebooks' stored outputs instead of executing them")
    parser.add_argument("--timeout", type=int_at_least(1), default=DEFAULT_TIMEOUT,
                        metavar="SECONDS",
                        help=f"seconds one cell may run (default: {DEFAULT_TIMEOUT})")
    args = parser.parse_args(argv)
    if args.no_execute and args.timeout != parser.get_default("timeout"):  # silently ignored otherwise
        raise ValueError("--timeout applies to executing the notebooks, not to --no-execute: leave "
                         "one of them out")
    refuse_file_in_the_way(args.out, "--out")  # before any work, not after executing the notebooks
    refuse_file_in_the_way(args.out / "build", "--out", args.out)  # not "[Errno 17] File exists"
    for name in (f"{REPORT_NAME}.html", f"{REPORT_NAME}.pdf", f"build/{REPORT_NAME}.ipynb"):
        if (args.out / name).is_dir():
            raise ValueError(f"--out {args.out}: {args.out / name} is a folder, where the report "
                             f"writes its {Path(name).name}; move it away or choose another --out")
    data_root = resolve_root(None)
    if not args.no_execute:
        if not split_folders(data_root, "train"):  # a mistyped HW3_DATA shows here (a train/
            # copy does not: the download names its rename)
            where = "HW3_DATA" if os.environ.get("HW3_DATA") else "the default, as HW3_DATA is unset"
            print(f"no dataset at {data_root} ({where}): downloading it there")
        download(data_root)  # a verified copy is left alone, an absent one fetched and verified
    create_out(args.out)  # and written in, before executing the notebooks, not after
    build(args.notebooks, args.out, execute=not args.no_execute, timeout=args.timeout,
          data_root=data_root, require_pdf=os.environ.get("HW3_REQUIRE_PDF") == "1")
    return 0
