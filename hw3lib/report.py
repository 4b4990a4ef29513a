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
- The introduction names the network, the classes, the images' size and channels of the run
  whose :func:`hw3lib.stamp.stamp_table` a ``report:stamp`` cell prints (notebook 06's chosen
  setting), as its rows say (:func:`introduction`): what the run used, whatever its settings.
- The export refuses, naming the notebook and cell: a cell that raises while executing (with
  ``--no-execute``, a stored error output in any cell), and in a tagged cell an error output,
  a traceback, text on stderr (warnings), a widget (it would print as blank space) or an
  absolute path; a bare ``report`` tag, a misspelt one (``Report:3``,
  ``report-3``: otherwise left out without a word) or an unknown section; a
  section without cells.
- With ``--no-execute`` the stamp names the data that the stored outputs were computed from
  (:func:`stored_data_sha256`), not the data at ``HW3_DATA`` when exporting, and the export
  warns where that is not the course's data (:func:`other_data`).
- With ``--no-execute`` the export warns (``warning: ...``) naming the first code cell of a
  notebook that its stored run did not run, or ran out of order or after code the notebook does
  not hold (execution counts not 1, 2, 3, ...: Restart and Run All gives those).
- The export warns (``warning: ...``, naming the notebook and cell) where a notebook's check of
  the figures its text quotes (:func:`hw3lib.results.quoted_figures`) finds figures its run no
  longer gives (changed settings, code or data): the report is written, and that text is stale.
  The report lists these warnings too, under its introduction.
- In the PDF, an equation, text output or table wider than the page is shrunk to fit; text
  output to 80% at most (:data:`hw3lib.export.TEXT_FLOOR`), where lines still too long wrap
  (paths break anywhere), a table to 60% (:data:`hw3lib.export.TABLE_FLOOR`), where its cells
  wrap.
- Chinese text (the original report's headings) is marked ``lang="zh-Hant"``, run by run, in a
  page whose language stays English: screen readers and fonts treat each as what it is.

This module holds the report's own content: which notebooks (:func:`find_notebooks`), the
sections and the cells chosen for them and checked (:func:`report_cells`), the introduction
(:func:`introduction`), the checks of a stored run (:func:`check_stored_run`,
:func:`out_of_order`, :func:`other_data`, :func:`stale_text`), the report notebook
(:func:`assemble`), :func:`build` and the command (:func:`main`). Executing a notebook is
:mod:`hw3lib.notebooks`; the HTML page and the PDF, :mod:`hw3lib.export`.
"""
import copy
import html
import os
import re
import shlex
import time
from pathlib import Path

import nbformat

from .atomic import atomic_write
from .cli import Parser, folder, int_at_least, parse_given
from .download import course_sha256, download, verify
from .export import IMAGES, PDF_INSTALL, REPORT_NAME, find_chromium, print_pdf, to_html
from .folders import REPO_ROOT, SPLITS, resolve_root, split_folders
from .images import DataError
from .notebooks import DEFAULT_TIMEOUT, ReportError, cell_label, execute_notebook, read_notebook
from .out_folders import create_out, refuse_file_in_the_way, refuse_out
from .results import STALE_FIGURES
from .stamp import stamp_rows

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
OUT_DIR = REPO_ROOT / "report"
NOTEBOOK_GLOB = "0[1-6]_*.ipynb"
TITLE = "HW3: CNN implementation · CNN 實作"
# The introduction's first sentence (introduction()): the network, and what the run that the
# report's stamp names (notebook 06's stamp_table(result, config)) was trained on, from its rows.
INTRO = ("A {network} written from scratch in NumPy and trained on {count} classes ({names}) of "
         "{height}×{width} images, fed to it as {channels}. ")
INTRO_UNSTAMPED = "A convolutional network written from scratch in NumPy. "  # no stamped run, or several
CHANNELS = {"L": "one grey channel", "LA": "two channels, grey and alpha",  # mode -> in words
            "RGB": "three colour channels (RGB)", "RGBA": "four channels, RGB and alpha"}
NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
PROVENANCE = {  # executed -> where the numbers come from, said after the intro (HTML)
    True: "The notebooks 01 to 06 were executed from scratch by <code>python -m hw3lib "
          "report</code>; every number, table and figure below comes from that run.",
    False: "The notebooks 01 to 06 were not executed for this report: every number, table and "
           "figure below is an output stored in them (<code>python -m hw3lib report "
           "--no-execute</code>).",
}
# Said above the export's warnings in the report itself, not only on the terminal.
WARNINGS_SAID = ("Warning: the export found outputs below that the text does not describe, or "
                 "that may not be those of one whole run:")
TAG_PREFIX = "report:"
SECTIONS = {  # tag suffix -> section title: a summary, then the original report's order
    "summary": "Summary · 摘要",
    "1": "1. The CNN implementation · CNN 實作",
    "2": "2. The loss function and AdamGD · 損失函數與 AdamGD",
    "3": "3. Results and images · 結果與圖片",
    "4": "4. The problem met and its solution · 遇到的問題與解決方法",
    "stamp": "Reproducibility · 可重現性",
}

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_TRACEBACK = "Traceback (most recent call last)"
_WARNING = re.compile(r"^.+?:\d+: ([\w.]+: .*)$", re.MULTILINE)  # FILE:LINE: CATEGORY: MESSAGE
# An absolute POSIX path (a '/' after a space, quote, bracket, '=' or ':' or at a line start,
# then at least one more '/': URLs do not match) or a Windows drive path.
_ABSOLUTE_PATH = re.compile(r"(?:^|(?<=[\s'\"(\[=:,]))(?:/[\w.~+-]+/[\w./~+-]*|[A-Za-z]:\\\w)",
                            re.MULTILINE)


def find_notebooks(folder):
    """The notebooks ``folder/0[1-6]_*.ipynb`` in order; at least one must exist."""
    paths = sorted(Path(folder).glob(NOTEBOOK_GLOB))
    if not paths:
        raise ReportError(f"no notebooks matching {NOTEBOOK_GLOB} in {folder}; "
                          "pass the folder that holds them with --notebooks")
    return paths



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
    dropped: a screen reader reads ``$f = \\alpha x$`` as "f = alpha x"), else (no markdown
    cell there, or one that opens with a heading, which names what follows) ``"Figure"``."""
    after = cells[index + 1] if index + 1 < len(cells) else None
    source = after.source.strip() if after and after.cell_type == "markdown" else ""
    if source.startswith("#"):
        source = ""
    paragraph = " ".join(source.split("\n\n")[0].split())
    text = re.sub(r"\*+([^*]+?)\*+", r"\1", paragraph).replace("`", "")
    return re.sub(r"\\([A-Za-z]+)", r"\1", text.replace("$", "")) or "Figure"


def _report_tag(tag):
    """Whether ``tag`` is a report tag or a slip for one (``report``, ``Report:3``, ``report-3``)
    that would otherwise leave its cell out of the report without a word."""
    return isinstance(tag, str) and tag.strip().lower().startswith(TAG_PREFIX.rstrip(":"))


def report_cells(name, nb):
    """Copies of the cells of ``nb`` (named ``name`` in messages) tagged for the report,
    checked, as ``{section: [cell, ...]}`` in cell order. Each image output (PNG, JPEG or SVG:
    :data:`hw3lib.export.IMAGES`) gets the caption below it as alternative text
    (``output.metadata["alt"]``)."""
    sections, known = {}, [TAG_PREFIX + key for key in SECTIONS]
    for index, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if isinstance(tags, str):  # a hand edit: one tag where a list of them goes
            raise ReportError(f"{cell_label(name, index + 1, cell)} has the tags {tags!r}, a string "
                              f"where a list goes; write them as [{tags!r}]")
        tags = [t for t in tags if _report_tag(t)]  # slips ("report", "Report:3") included
        if not tags:
            continue
        where = cell_label(name, index + 1, cell)
        if len(tags) > 1 or tags[0] not in known:
            raise ReportError(f"{where} has the tags {tags}; give it one of " + ", ".join(known))
        _check_cell(where, cell)
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown" and cell.source.lstrip(" \n*_").startswith(CAPTION_STARTS):
            cell.metadata["tags"] = [*tags, "caption"]
        for output in cell.get("outputs", []):
            if any(mime in output.get("data", {}) for mime in IMAGES):
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
                    f"{cell_label(name, index + 1, cell)} holds an error from the notebook's last run "
                    f"({output.get('ename')}: {output.get('evalue')}), so its stored outputs are "
                    "not those of a whole run; fix the cell and run the notebook again (Restart "
                    "and Run All), or export without --no-execute")


def out_of_order(name, nb):
    """``"NAME, cell N (...): ..."`` for the first code cell of ``nb`` (named ``name``) that its
    stored run did not run, ran out of order (an execution count not above the one before), or
    ran after code the notebook does not hold (a count that skips one: a cell deleted since, or
    run twice; a first cell's count above 1: the kernel ran code before it): its outputs, and
    those after it, may not be those of one whole run from the top, which counts 1, 2, 3, ...
    Empty cells (the kernel counts no run of them) and cells tagged ``skip-execution`` that
    were not run aside."""
    last = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        count = cell.get("execution_count")
        if count is None and "skip-execution" in cell.get("metadata", {}).get("tags", []):
            continue
        if count is None or count != last + 1:
            said = ("was not run" if count is None else
                    f"was run out of order (execution count {count}, after {last})" if count <= last
                    else f"was run after code the notebook does not hold (execution count {count}, "
                         + (f"after {last}: a cell deleted since, or run twice)" if last else
                            "the first: the kernel ran code before it)"))
            return [f"{cell_label(name, index + 1, cell)} {said} in the stored outputs: they may not "
                    "be those of one whole run; Restart and Run All, or export without "
                    "--no-execute"]
        last = count
    return []


def stale_text(name, nb):
    """``"NAME, cell N (...): The text quotes figures ..."`` for each output of ``nb`` (named
    ``name``) in which :func:`hw3lib.results.quoted_figures` says that the notebook's text
    quotes figures its run no longer gives (run with other settings, code or data)."""
    return [f"{cell_label(name, index + 1, cell)}: {line.strip()}"
            for index, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.output_type == "stream"
            for line in output.text.splitlines() if line.startswith(STALE_FIGURES)]


# A "Dataset SHA-256" row of a stored stamp_table() output: the data that run was computed from.
_STORED_DATA_SHA = re.compile(r"^Dataset SHA-256 +(\S+(?: \S+)*)\s*$", re.MULTILINE)


def _stored_data(nb):
    """``(cell index, SHA-256)`` for each data SHA-256 that a stored stamp (:func:`hw3lib.stamp.
    stamp_table`, notebook 06) in ``nb`` names: the data its outputs were computed from."""
    return [(index, match.group(1)) for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code" for output in cell.get("outputs", [])
            if output.output_type == "stream" for match in _STORED_DATA_SHA.finditer(output.text)]


def stored_data_sha256(notebooks):
    """The data the stored outputs of ``notebooks`` (``[(name, nb), ...]``) were computed from,
    for the stamp of ``--no-execute``: each SHA-256 that a stored stamp names, said to be the
    course's copy or not; the data at ``HW3_DATA`` when exporting may be another."""
    course = course_sha256()
    found = dict.fromkeys(sha for _, nb in notebooks for _, sha in _stored_data(nb))
    if not found:
        return "not named in the stored outputs (notebook 06 prints it)"
    return "; ".join(f"{sha}, {'the course' if sha == course else 'not the course'}'s data"
                     if len(sha) == 64 else sha for sha in found)


def other_data(name, nb):
    """``"NAME, cell N (...): ..."`` for each stored stamp of ``nb`` (named ``name``) naming data
    other than the course's: its outputs, which the report shows as the course's results (its
    text discusses the course's images), were computed from other images."""
    course = course_sha256()
    return [f"{cell_label(name, index + 1, nb.cells[index])}: the stored outputs were computed "
            f"from data other than the course's (Dataset SHA-256 {sha}), so they are not the "
            "course's results; run the notebooks on the course's data, or export without "
            "--no-execute" for index, sha in _stored_data(nb) if len(sha) == 64 and sha != course]


# The rows of a run's stamp (hw3lib.stamp.stamp_table) that the introduction quotes, as printed:
# "Classes          3: Carambula, Lychee, Pear", "Images  32x32, mode L, flips on", "Model  LeNet-5".
_RUN_ROW = re.compile(r"^(Classes|Images|Model) {2,}(\S.*?)\s*$", re.MULTILINE)
_CLASSES = re.compile(r"(\d+): (.+)")
_IMAGES = re.compile(r"(\d+)x(\d+), mode (\w+),")


def _stamped_input(text):
    """The introduction's fields from a run's stamp printed in ``text``, or None where its
    ``Classes``, ``Images`` or ``Model`` row is missing or not as the stamp writes it."""
    rows = dict(_RUN_ROW.findall(text))
    classes = _CLASSES.fullmatch(rows.get("Classes", ""))
    images = _IMAGES.match(rows.get("Images", ""))
    model, _, changes = rows.get("Model", "").partition(" but ")
    if not (classes and images and images.group(3) in CHANNELS and model == "LeNet-5"):
        return None
    count = int(classes.group(1))
    return dict(network="LeNet-5 convolutional network" + (f", but {changes}," if changes else ""),
                count=NUMBER_WORDS[count - 2] if 2 <= count <= len(NUMBER_WORDS) + 1 else count,
                names=classes.group(2), height=images.group(1), width=images.group(2),
                channels=CHANNELS[images.group(3)])


def introduction(notebooks):
    """The report's first sentence, from the run stamped in the cells of ``notebooks`` (``[(name,
    nb), ...]``) tagged ``report:stamp`` (notebook 06's :func:`hw3lib.stamp.stamp_table` of the
    chosen setting's run): the network, the classes, the images' size fed to it and its
    channels, as that run had them, whatever the notebook's settings and data. Without one
    stamped run (none, or several that differ), the network alone (:data:`INTRO_UNSTAMPED`)."""
    found = {tuple(fields.items()) for _, nb in notebooks for cell in nb.cells
             if TAG_PREFIX + "stamp" in cell.get("metadata", {}).get("tags", [])
             for output in cell.get("outputs", []) if output.output_type == "stream"
             if (fields := _stamped_input(output.text))}
    return INTRO.format(**dict(found.pop())) if len(found) == 1 else INTRO_UNSTAMPED


def _markdown(source):
    return nbformat.v4.new_markdown_cell(source, metadata={"tags": []})


def assemble(notebooks, stamp, executed=True, warnings=()):
    """One report notebook from ``notebooks`` (``[(name, nb), ...]`` in order) and the stamp
    rows: title, the summary, the four sections, the stamp; the introduction says what the
    stamped run trained on (:func:`introduction`), whether the notebooks were ``executed`` for
    it, and lists the export's ``warnings`` (stale text, cells run out of order, other data),
    so that the page handed in says so too. Raises :class:`ReportError` for an empty section."""
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
    # HTML: a class's name is no markdown or math
    intro = f"{html.escape(introduction(notebooks))}{PROVENANCE[executed]}"
    cells = [_markdown(f'<h1 id="title">{TITLE}</h1>\n\n<p id="introduction">{intro}</p>')]
    if warnings:  # one HTML block: no markdown or math read into the cells' labels
        cells.append(_markdown(f'<div id="warnings"><p><strong>{WARNINGS_SAID}</strong></p><ul>'
                               + "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
                               + "</ul></div>"))
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
    # the data the stored outputs came from, not that at HW3_DATA now
    stamp = (stamp_rows(True, data_root) if execute else
             stamp_rows(False, data_sha256=stored_data_sha256(notebooks)))
    checks = (stale_text,) if execute else (out_of_order, other_data, stale_text)
    warnings = [line for name, nb in notebooks for check in checks for line in check(name, nb)]
    for stale in warnings:
        log(f"warning: {stale}")  # exported all the same: the text is the author's to rewrite
    report = assemble(notebooks, stamp, executed=execute, warnings=warnings)
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


def check_course_copy(root, where):
    """DataError unless the Data_train/ and Data_test/ at ``root`` (found by ``where``, in words)
    are the course's verified copy: the report executes the notebooks on the course's data
    only, and one's own images there must not be moved or deleted for it."""
    report = verify(root)
    if not report.ok:
        restore = ("" if report.extra else  # the course's files alone, which the download restores
                   f"`python -m hw3lib download {shlex.quote(os.fspath(root))}` restores it there; or ")
        raise DataError(
            f"{root} ({where}) holds Data_train/ or Data_test/ that differ from the manifest "
            f"({report}): the report executes the notebooks on the course's data only. Fix: {restore}point "
            "HW3_DATA at a verified copy of it (`python -m hw3lib download DEST` fetches one into "
            "another folder), or export the notebooks' stored outputs as they are with "
            "--no-execute; the images there can stay as they are")


def main(argv=None):
    """``python -m hw3lib report``: get the data, execute the notebooks, export the report."""
    parser = Parser(prog="python -m hw3lib report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=folder, default=NOTEBOOKS_DIR, metavar="DIR",
                        help="folder of the notebooks 0[1-6]_*.ipynb (default: %(default)s)")
    parser.add_argument("--out", type=folder, default=OUT_DIR, metavar="DIR",
                        help="folder for hw3_report.html/.pdf and build/ (default: %(default)s)")
    parser.add_argument("--no-execute", action="store_true",
                        help="export the notebooks' stored outputs instead of executing them")
    parser.add_argument("--timeout", type=int_at_least(1), default=DEFAULT_TIMEOUT,
                        metavar="SECONDS",
                        help=f"seconds one cell may run (default: {DEFAULT_TIMEOUT})")
    args, given = parse_given(parser, argv, ["timeout"])
    if args.no_execute and "timeout" in given:  # silently ignored otherwise
        raise ValueError("--timeout applies to executing the notebooks, not to --no-execute: leave "
                         "one of them out")
    refuse_out(args.out, None, Path.home() / "hw3-report")  # before any work, not after the notebooks
    refuse_file_in_the_way(args.out / "build", "--out", args.out)  # not "[Errno 17] File exists"
    for name in (f"{REPORT_NAME}.html", f"{REPORT_NAME}.pdf", f"build/{REPORT_NAME}.ipynb"):
        if (args.out / name).is_dir():
            raise ValueError(f"--out {args.out}: {args.out / name} is a folder, where the report "
                             f"writes its {Path(name).name}; move it away or choose another --out")
    data_root = resolve_root(None)
    if not args.no_execute:
        where = "HW3_DATA" if os.environ.get("HW3_DATA") else "the default, as HW3_DATA is unset"
        if not split_folders(data_root, "train"):  # a mistyped HW3_DATA shows here (a train/
            # copy does not: the download names its rename)
            print(f"no dataset at {data_root} ({where}): downloading it there")
        elif any((data_root / name).exists() for name in SPLITS.values()):
            check_course_copy(data_root, where)  # refused, not completed as the download would
        download(data_root)  # a verified copy is left alone, an absent one fetched and verified
    create_out(args.out)  # and written in, before executing the notebooks, not after
    build(args.notebooks, args.out, execute=not args.no_execute, timeout=args.timeout,
          data_root=data_root, require_pdf=os.environ.get("HW3_REQUIRE_PDF") == "1")
    return 0
