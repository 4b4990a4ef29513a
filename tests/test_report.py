"""The report export: fixture notebooks -> executed -> one HTML page and an A4 PDF."""
import base64
import contextlib
import errno
import hashlib
import html
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from conftest import missing as missing_tool

from hw3lib import LeNet5, TrainConfig
from hw3lib.__main__ import main as cli
from hw3lib.export import (REPORT_CSS, TEXT_FLOOR, keep_math_words, latex_to_mathml, mark_chinese,
                           print_pdf, to_html)
from hw3lib.images import DataError
from hw3lib.notebooks import ReportError, execute_notebook
from hw3lib.report import (CAPTION_STARTS, INTRO_UNSTAMPED, NOTEBOOKS_DIR, SECTIONS, TITLE, assemble,
                           build, introduction, report_cells)
from hw3lib.results import quoted_figures
from hw3lib.stamp import stamp_table
from hw3lib.trained import FitResult

INPUT_MARKER = "INPUT_MARKER_never_in_the_report"
SUMMARY_TABLE = f"""# {INPUT_MARKER}
from html import escape
from IPython.display import HTML
rows = LeNet5(seed=0).summary()
HTML('<table><tr><th>layer</th><th>output shape</th><th>parameters</th></tr>'
     + ''.join(f'<tr><td>{{escape(layer)}}</td><td>{{shape}}</td><td>{{count}}</td></tr>'
               for layer, shape, count in rows) + '</table>')"""
FIGURE = """fig, ax = plt.subplots(figsize=(4, 2.5))
ax.plot(np.arange(10), np.random.default_rng(0).random(10))
ax.set(title='{title}', xlabel='epoch', ylabel='loss')
plt.show()"""

WIDE_TABLE = """from IPython.display import HTML
HTML('<table>' + ''.join('<tr>' + ''.join(f'<td>wide_{i}_{j}_value</td>' for j in range(25))
                         + '</tr>' for i in range(3)) + '</table>')"""


def cell(kind, source, tag=None):
    new = new_markdown_cell if kind == "md" else new_code_cell
    return new(source, metadata={"tags": [tag]} if tag else {})


def write_notebooks(folder, notebooks):
    """Write ``{name: [cells]}`` as notebooks into ``folder``; return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, cells in notebooks.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, folder / name)
    return folder


def fixture_notebooks():
    """Two small notebooks covering every section: a table computed by hw3lib, two figures
    (one untagged, which must stay out), equations (one far too long for a line), text lines
    too wide for the page (109, 139 and 208 characters, a path of 184), Chinese text."""
    imports = cell("code", "import matplotlib.pyplot as plt\nimport numpy as np\n"
                           "from hw3lib import LeNet5")
    return {
        "01_model.ipynb": [
            imports,
            cell("md", "# LeNet-5 架構\n\nThe convolution as one product, "
                       "$Y = W_{col}\\,\\mathrm{im2col}(X)$:", "report:1"),
            cell("code", SUMMARY_TABLE, "report:1"),
            cell("code", FIGURE.format(title="untagged figure")),
            cell("md", "Adam with bias correction:\n\n$$\\begin{aligned} m_t &= \\beta_1 m_{t-1}"
                       " + (1-\\beta_1) g_t \\\\ \\hat m_t &= \\frac{m_t}{1-\\beta_1^t}"
                       "\\end{aligned}$$", "report:2"),
        ],
        "02_results.ipynb": [
            imports,
            cell("code", FIGURE.format(title="training loss"), "report:3"),
            cell("md", "Figure 1: the training loss per epoch.", "report:3"),
            cell("md", "In short: the run's test accuracy is 0.99.", "report:summary"),
            cell("code", "print('naive 1.00 s, im2col 0.01 s, ratio 100x')", "report:4"),
            cell("md", "A long equation: $$L = " + " + ".join(f"w_{{{i}}} x_{{{i}}}^2"
                                                            for i in range(40)) + "$$", "report:4"),
            cell("code", "print('  '.join(f'col{i:02d}' for i in range(30)))", "report:4"),
            cell("code", "print(' '.join(['abcdefghi'] * 11))", "report:4"),
            cell("code", "print(' '.join(['jklmnopqr'] * 14))", "report:4"),
            cell("code", "print('runs/' + '/'.join(f'folder{i:02d}' for i in range(20)))",
                 "report:4"),
            cell("code", WIDE_TABLE, "report:4"),
            cell("code", "print('seed 0')", "report:stamp"),
            cell("code", "import os, pathlib\nassert os.path.isabs(os.environ['HW3_DATA'])\n"
                         "assert pathlib.Path.cwd().name == 'notebooks'"),
        ],
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report of the executed fixture notebooks: ``(html_path, pdf_path, html_text)``.
    Built as `make test` runs it, with MPLBACKEND=Agg (figures must still show) and a
    relative data folder (the kernel, working in notebooks/, gets it absolute)."""
    root = tmp_path_factory.mktemp("report")
    folder = write_notebooks(root / "notebooks", fixture_notebooks())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MPLBACKEND", "Agg")
        html_path, pdf_path = build(folder, root / "out", data_root=os.path.relpath(root),
                                    log=lambda *a: None)
    return html_path, pdf_path, html_path.read_text(encoding="utf-8")


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def missing_pdf_tools(pdf_path):
    """What the PDF checks lack here: Chromium (no PDF), poppler-utils, fonts-noto-cjk."""
    missing = ["chromium"] if pdf_path is None else []
    missing += [tool for tool in ("pdftotext", "pdfinfo", "pdftohtml") if not shutil.which(tool)]
    if not shutil.which("fc-match") or "NotoSansCJK" not in run("fc-match", "Noto Sans CJK TC"):
        missing.append("fonts-noto-cjk")
    return missing


@pytest.fixture
def pdf(built):
    """The PDF; skipped only where a tool is missing and HW3_REQUIRE_PDF != 1."""
    missing = missing_pdf_tools(built[1])
    if missing:
        missing_tool(f"missing {', '.join(missing)}; `make system-deps` installs them", "HW3_REQUIRE_PDF")
    return built[1]


class Page(HTMLParser):
    """A page's ``<img>`` attributes (``images``, dicts) and every ``<table>`` as a list of
    rows of cell texts (``tables``)."""

    def __init__(self, page):
        super().__init__()
        self.images, self.tables, self.cell = [], [], None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_html_embeds_the_tagged_figures_and_only_them(built):
    tagged_figures = sum("plt.show()" in c.source for cells in fixture_notebooks().values()
                         for c in cells if c.metadata.get("tags"))
    images = Page(built[2]).images
    assert len(images) == tagged_figures, "the untagged figure stays out"
    for image in images:
        assert image["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(image["src"][len("data:image/png;base64,"):])
        assert Image.open(io.BytesIO(png)).size[0] > 100
    assert [image["alt"] for image in images] == ["Figure 1: the training loss per epoch."]


def alt_text(caption):
    """The alternative text that a figure followed by the markdown ``caption`` gets."""
    png = base64.b64encode(b"\x89PNG").decode()
    figure = new_code_cell("plt.show()", metadata={"tags": ["report:3"]}, outputs=[
        new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})])
    nb = new_notebook(cells=[figure, cell("md", caption, "report:3")])
    [shown, _] = report_cells("01_x.ipynb", nb)["3"]
    return shown.outputs[0].metadata["alt"]


def test_a_figure_gets_its_whole_caption_as_plain_alternative_text():
    """A caption wrapped over several lines is one paragraph: the alt text is all of it, without
    the markdown marks (it was its first line, '*Figure: the loss of `fit`')."""
    assert alt_text("*Figure: the loss of `fit`\nper epoch, **log** scale.*\n\nThe curve falls.") == (
        "Figure: the loss of fit per epoch, log scale.")


def test_a_figure_followed_by_a_heading_gets_no_heading_as_alternative_text():
    """A heading names the section after the figure, not the figure ("## Next" was read aloud)."""
    assert alt_text("## The loss function\n\nThe loss is ...") == "Figure"


def test_a_figure_caption_with_latex_gives_alternative_text_without_dollars():
    """The alt text is read aloud: "$f = \\alpha x^2$" becomes "f = alpha x^2", not "dollar f"."""
    assert alt_text("*Figure: paths on $f = \\alpha x^2$ from $(-4, 1)$.*") == (
        "Figure: paths on f = alpha x^2 from (-4, 1).")


def test_a_figure_in_svg_or_jpeg_gets_its_caption_as_alternative_text_too(tmp_path):
    """A figure shown as SVG (``%config InlineBackend.figure_formats = ['svg']``) or JPEG was
    exported with nbconvert's "No description has been provided for this image", the caption
    under it unused: a screen reader said that instead of what the figure shows."""
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, "JPEG")
    figures = {"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>',
               "image/jpeg": base64.b64encode(jpeg.getvalue()).decode()}
    cells = [c for n, (mime, data) in enumerate(figures.items()) for c in (
        with_output(new_output("display_data", data={mime: data, "text/plain": "<Figure>"}), "report:3"),
        cell("md", f"**Figure:** curve {n}.", "report:3"))]
    page = to_html(assemble([("01_x.ipynb", new_notebook(cells=cells + one_cell_per_section("x")))],
                            []), tmp_path)
    images = Page(page).images
    assert [image["src"].split(";")[0] for image in images] == ["data:image/svg+xml", "data:image/jpeg"]
    assert [image["alt"] for image in images] == ["Figure: curve 0.", "Figure: curve 1."]


def test_a_caption_cell_is_tagged_to_stay_with_what_it_captions():
    """A markdown cell that starts "Table:" or "*Figure:" gets the tag "caption" (the CSS keeps it
    on the page of the output above it); other prose does not."""
    table = new_code_cell("print(t)", metadata={"tags": ["report:4"]}, outputs=[
        new_output("stream", name="stdout", text="a  b\n1  2\n")])
    nb = new_notebook(cells=[table, cell("md", "Table: a and b.", "report:4"),
                             cell("md", "*Figure: the loss.*", "report:4"),
                             cell("md", "The table shows it.", "report:4")])
    tags = [c.metadata.get("tags") for c in report_cells("01_x.ipynb", nb)["4"]]
    assert tags == [["report:4"], ["report:4", "caption"], ["report:4", "caption"], ["report:4"]]
    assert ".celltag_caption { break-before: avoid; }" in REPORT_CSS


def test_every_caption_of_the_notebooks_is_written_alike():
    """Seven captions were "*Figure: ...*" (italic), the others upright, read as body text where
    prose followed them (page 14's "Table: accuracy and loss ..." ran into "The report's loop
    reproduces ..."); one caption held the discussion after it as its own first paragraph."""
    for path in sorted(NOTEBOOKS_DIR.glob("0*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown" and cell.source.lstrip(" \n*_").startswith(CAPTION_STARTS):
                first = cell.source.split("\n\n")[0]
                assert first.startswith(("**Figure:** ", "**Table:** ")), (path.name, first[:40])
                assert len(first) < 400, (path.name, first[:40])


def test_a_caption_prints_smaller_than_the_text(tmp_path):
    def table():
        return with_output(new_output("stream", name="stdout", text="a  b\n"), tag="report:4")

    nb = new_notebook(cells=[table(), cell("md", "**Table:** the loss.\n\nThe table shows it.", "report:4"),
                             *one_cell_per_section("x")])
    page = to_html(assemble([("01_x.ipynb", nb)], []), tmp_path)
    heights = {word: y1 - y0 for word, _, y0, _, y1 in printed_words(tmp_path, page)}
    assert heights["loss."] < 0.95 * heights["shows"], heights  # 9.5 pt, the body 10.5 pt


def test_paragraphs_of_two_cells_are_as_far_apart_as_two_of_one_cell(tmp_path):
    """Prose ran on from one cell into the next with no gap (page 14: "... its own." then "The
    report's loop reproduces ..." read as one paragraph), where two paragraphs of one cell are a
    blank line apart; after a printed output too. A caption stays close to what it captions."""
    printed = with_output(new_output("stream", name="stdout", text="delta  1\n"), tag="report:3")
    nb = new_notebook(cells=[cell("md", "alpha one.\n\nbeta two.", "report:3"),
                             cell("md", "gamma three.", "report:3"), printed,
                             cell("md", "Table: epsilon.", "report:3"),
                             cell("md", "zeta four.", "report:3"), *one_cell_per_section("x")])
    page = to_html(assemble([("01_x.ipynb", nb)], []), tmp_path)
    top = {word: (y0, y1) for word, _, y0, _, y1 in printed_words(tmp_path, page)}
    gap = lambda above, below: top[below][0] - top[above][1]  # noqa: E731
    assert gap("beta", "gamma") == pytest.approx(gap("alpha", "beta"), abs=1.5)
    assert gap("epsilon.", "zeta") == pytest.approx(gap("alpha", "beta"), abs=1.5)
    assert gap("delta", "Table:") < gap("alpha", "beta") / 2, "the caption under its table"


def test_a_narrow_table_starts_at_the_texts_margin(tmp_path):
    """Jupyter's CSS centres an HTML table: the stamp's stood indented, every other table (printed
    as text) at the margin."""
    nb = new_notebook(cells=[cell("md", "Alpha text.\n\n<table><tr><th>beta</th><td>gamma</td></tr></table>",
                                  "report:4"), *one_cell_per_section("x")])
    page = to_html(assemble([("01_x.ipynb", nb)], []), tmp_path)
    left = {word: x0 for word, x0, *_ in printed_words(tmp_path, page)}
    assert left["beta"] == pytest.approx(left["Alpha"], abs=8), left  # a cell's padding at most


def test_a_rows_name_stays_whole_beside_a_long_value(tmp_path):
    """The stamp's "Dataset SHA-256" broke as "Dataset SHA-" over "256" beside its long value."""
    sha = "d158e3aaabe2747549e4f3d59202323d2dc7abb340b971928970e25f548e3cbe, the course's data"
    page = to_html(assemble([("01_x.ipynb", new_notebook(cells=one_cell_per_section("x")))],
                            [("Dataset SHA-256", sha)]), tmp_path)
    assert "SHA-256" in [word for word, *_ in printed_words(tmp_path, page)]


def test_a_long_paragraph_breaks_across_pages_rather_than_leave_a_page_half_empty(tmp_path):
    """Paragraphs could not break (``break-inside: avoid``): a long one that did not fit the
    rest of a page moved whole to the next, leaving that rest empty (the report's page 19 of
    21 was 48% empty, four others a quarter); it now runs on, lines kept in threes."""
    filler = "\n\n".join(f"Paragraph {i}: " + "word " * 12 for i in range(12))  # a third of a page
    long = "Start of the long one: " + " ".join(f"w{i}" for i in range(700)) + " its end."
    nb = new_notebook(cells=[cell("md", filler, "report:1"), cell("md", long, "report:1"),
                             *one_cell_per_section("x")])
    words = [word for word, *_ in printed_words(tmp_path, to_html(assemble([("01_x.ipynb", nb)], []),
                                                                  tmp_path))]
    assert "long" in words and "end." in words
    first_page = run("pdftotext", "-f", "1", "-l", "1", str(tmp_path / "page.pdf"), "-").split()
    assert "long" in first_page and "end." not in first_page  # begun on page 1, ended on page 2
    assert not re.search(r"\.jp-RenderedHTMLCommon p \{[^}]*break-inside: avoid", REPORT_CSS)


def test_no_line_breaks_between_an_equation_and_the_punctuation_touching_it(tmp_path):
    """Chromium broke a line between an inline equation and the comma after it (the report's
    page 5 had a line begin ", without m̂t"), or after the "(" before one."""
    text = " ".join(f"{'abcdefghijklm'[:k % 13 + 1]} $x$, $i$, ($y$ q" for k in range(200))
    nb = new_notebook(cells=[cell("md", text, "report:1"), *one_cell_per_section("x")])
    assert printed_words(tmp_path, to_html(assemble([("01_x.ipynb", nb)], []), tmp_path))
    lines = run("pdftotext", str(tmp_path / "page.pdf"), "-").splitlines()
    assert not [line for line in lines if line.startswith(",") or line.endswith("(")]


def test_a_sign_after_an_operator_is_set_close_to_its_number(tmp_path):
    """latex2mathml wrote the minus of (-4, 1) as that of a - b, spaced on both sides: the
    report printed "( − 4, 1)" and "= − 0.875"; a binary minus keeps its spaces."""
    nb = new_notebook(cells=[cell("md", "Alpha $(-4, 1)$ beta $y = -0.875$ gamma $(a+b) - c$ end.",
                                  "report:1"), *one_cell_per_section("x")])
    words = [word for word, *_ in printed_words(tmp_path, to_html(assemble([("01_x.ipynb", nb)], []),
                                                                  tmp_path))]
    assert words[words.index("Alpha"):words.index("end.")] == [
        "Alpha", "(−4,", "1)", "beta", "𝑦", "=", "−0.875", "gamma", "(𝑎", "+", "𝑏)", "−", "𝑐"]


def test_a_functions_name_is_spaced_from_the_terms_around_it(tmp_path):
    """latex2mathml wrote \\log and \\ln with no space: the report's loss printed as
    "Y_nk logp_nk", and "ln2 = 0.69"; as in TeX, none before a "("."""
    nb = new_notebook(cells=[cell("md", r"Alpha $Y \log p$ beta $\ln 2$ gamma $\log(x)$ end.",
                                  "report:1"), *one_cell_per_section("x")])
    words = [word for word, *_ in printed_words(tmp_path, to_html(assemble([("01_x.ipynb", nb)], []),
                                                                  tmp_path))]
    assert words[words.index("Alpha"):words.index("end.")] == [
        "Alpha", "𝑌", "log", "𝑝", "beta", "ln", "2", "gamma", "log(𝑥)"]


def test_the_operators_of_a_script_are_set_tight(tmp_path):
    """latex2mathml spaced the operators of sub- and superscripts as on the line, and /, . and
    | as operators: the report printed "θ_{t − 1}", "∑_{n = 1}", "g_{n, f, r, q}", "1 / (1 − μ)",
    "W .reshape" and "max | a − b |", where TeX sets them tight."""
    nb = new_notebook(cells=[cell("md", r"Alpha $\theta_{t-1}$ beta $g_{n,f}$ gamma $a - b$ "
                                        r"delta $1/(1-\mu)$ epsilon $W.\mathrm{reshape}$ "
                                        r"zeta $\max|a - b|$ end.",
                                  "report:1"), *one_cell_per_section("x")])
    words = [word for word, *_ in printed_words(tmp_path, to_html(assemble([("01_x.ipynb", nb)], []),
                                                                  tmp_path))]
    assert words[words.index("Alpha"):words.index("end.")] == [
        "Alpha", "𝜃", "𝑡−1", "beta", "𝑔", "𝑛,𝑓", "gamma", "𝑎", "−", "𝑏", "delta", "1/(1",
        "−", "𝜇)", "epsilon", "𝑊.reshape", "zeta", "max", "|𝑎", "−", "𝑏|"]


def test_equations_are_kept_with_their_punctuation_in_time_linear_in_the_page():
    """The span of an equation and the text touching it, as one word: the pattern that found
    them was tried at every character of the page's images, base64 runs of ~200 KB with no
    space or tag, in time growing with the square of each run (the report's export took 4
    minutes): a run of 400,000 here would take hours. The alarm, 100 times what a linear
    pass needs, fails the test rather than hang it."""
    math = '<math display="inline"><mi>x</mi></math>'
    image = f'<img src="data:image/png;base64,{"A" * 400_000}">'
    page = f"<p>{image}({math}, {math}{math}.) <b>{math}</b> a{math}b</p>{image}"
    previous = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("keep_math_words took over 10 s"))
    signal.alarm(10)
    try:
        kept = keep_math_words(page)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    words = re.findall(r'<span class="math-word">(.*?)</span>', kept)
    assert words == [f"({math},", f"{math}{math}.)", math, f"a{math}b"]
    assert re.sub(r'</?span[^>]*>', "", kept) == page


def printed_words(tmp_path, page):
    """``[(word, xMin, yMin, xMax, yMax), ...]`` of the HTML ``page`` printed by
    :func:`print_pdf`; skipped where Chromium or poppler-utils is missing (unless
    HW3_REQUIRE_PDF=1)."""
    from hw3lib.export import find_chromium
    if find_chromium() is None or not shutil.which("pdftotext"):
        missing_tool("missing chromium or poppler-utils; `make system-deps` installs them",
                     "HW3_REQUIRE_PDF")
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    print_pdf(find_chromium(), tmp_path / "page.html", tmp_path / "page.pdf")
    words = run("pdftotext", "-bbox", str(tmp_path / "page.pdf"), "-")
    return [(html.unescape(word), *map(float, box)) for *box, word in re.findall(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)<', words)]


def test_html_table_values_equal_hw3lib(built):
    rows = [[layer, str(shape), str(count)] for layer, shape, count in LeNet5(seed=0).summary()]
    tables = Page(built[2]).tables
    assert [["layer", "output shape", "parameters"]] + rows in tables


def test_html_hides_code_and_fetches_nothing(built):
    page = built[2]
    assert INPUT_MARKER not in page and "hl-ipython" not in page, "no code cell's input"
    assert "<script" not in page, "no JavaScript: MathJax, require.js and widgets stay out"
    assert "<math" in page and "$" not in page.split("<body", 1)[1], "equations become MathML"


def unmarked(page):
    """``page`` without the ``<span lang="zh-Hant">`` of :func:`mark_chinese`."""
    return re.sub(r'<span lang="zh-Hant">([^<]*)</span>', r"\1", page)


def test_html_has_the_sections_in_order_and_demoted_headings(built):
    page = unmarked(built[2])
    positions = [page.index(html.escape(title, quote=False)) for title in SECTIONS.values()]
    assert positions == sorted(positions)
    before_heading = page.split("LeNet-5 架構")[0]
    assert before_heading.rsplit("<", 1)[1].startswith("h3"), "the author's # moves to ###"
    assert "ratio 100x" in page and "seed 0" in page


class Languages(HTMLParser):
    """The text of a page's body (``texts``) as ``(language, text)`` pairs, the language being
    the ``lang`` of the innermost element that sets one."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self, page):
        super().__init__()
        self.langs, self.texts, self.in_body = [], [], False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.in_body |= tag == "body"
        if tag not in self.VOID:
            self.langs.append(dict(attrs).get("lang") or (self.langs or [None])[-1])

    def handle_startendtag(self, tag, attrs):  # <mspace/>: nothing inside it
        pass

    def handle_endtag(self, tag):
        if tag not in self.VOID:
            self.langs.pop()

    def handle_data(self, data):
        if data.strip() and self.in_body:
            self.texts.append((self.langs[-1], data.strip()))


def test_chinese_text_is_marked_as_chinese_in_an_english_page(tmp_path):
    """Headings, prose and printed output in Chinese each get lang="zh-Hant" (a screen reader
    reads them as Chinese); the English around them stays English, as the page is."""
    narrative = cell("md", "## 損失函數 (the loss)\n\nAdam 的偏差修正，見「第二節」。", "report:2")
    printed = with_output(new_output("stream", name="stdout", text="類別 Pear: 0.99\n"), "report:3")
    nb = new_notebook(cells=[narrative, printed, *one_cell_per_section("x")])
    page = to_html(assemble([("01_x.ipynb", nb)], [("種子", "0")]), tmp_path)
    assert '<html lang="en">' in page
    body = Languages(page).texts
    chinese = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff01-\uff60]")
    assert {lang for lang, text in body if chinese.search(text)} == {"zh-Hant"}
    assert {lang for lang, text in body if not chinese.search(text)} == {"en"}
    marked = [text for lang, text in body if lang == "zh-Hant"]
    for expected in ("損失函數", "的偏差修正，見「第二節」。", "類別", "種子", "摘要", "實作"):
        assert expected in marked, marked
    assert f"<title>{html.escape(TITLE)}</title>" in page, "a title holds no markup"


def test_only_text_is_marked_as_chinese_not_markup():
    page = ('<head><title>實作</title></head><body><img alt="圖 1"><!-- 註 -->'
            '<style>p::before { content: "註"; }</style><p>圖 1 表 2, 3</p></body>')
    marked = '<p><span lang="zh-Hant">圖</span> 1 <span lang="zh-Hant">表</span> 2, 3</p>'
    assert mark_chinese(page) == page.replace("<p>圖 1 表 2, 3</p>", marked)


def test_pdf_is_a4_with_the_title_and_the_sections_in_order(pdf):
    text = " ".join(run("pdftotext", "-layout", str(pdf), "-").split())
    positions = [text.find(title) for title in [TITLE, *SECTIONS.values()]]
    assert -1 not in positions and positions == sorted(positions), text[:500]
    assert "ratio 100x" in text and "seed 0" in text
    assert "the run's test accuracy is 0.99" in run("pdftotext", "-f", "1", "-l", "1", str(pdf), "-")
    info = run("pdfinfo", str(pdf))
    # the fixture's sections run on over 3 pages (4 when sections 2-4 each started one)
    assert "(A4)" in info and int(re.search(r"Pages:\s+(\d+)", info).group(1)) == 3


def test_pdf_has_an_outline_of_the_title_and_the_sections(pdf):
    """The PDF's bookmarks (a viewer's side panel) list its headings: the title, the sections in
    order, the authors' headings under them."""
    xml = run("pdftohtml", "-xml", "-i", "-stdout", str(pdf))
    titles = [html.unescape(item) for item in re.findall(r'<item page="\d+">(.*?)</item>', xml)]
    assert [t for t in titles if t in (TITLE, *SECTIONS.values())] == [TITLE, *SECTIONS.values()]
    assert "LeNet-5 架構" in titles


def test_the_sections_run_on_without_forced_page_breaks(built):
    """Sections 2-4 each started a page, which left the page before up to 85% empty (section
    2's last five lines alone on page 8); they now follow one another as the text does."""
    page = built[2]
    assert "break-before: page" not in page
    assert re.findall(r'<h2 id="(section-[^"]+)"', page) == [  # the summary right after the title
        "section-summary", "section-1", "section-2", "section-3", "section-4", "section-stamp"]


def test_pdf_keeps_every_word_inside_the_margins(pdf):
    """Long equations and wide text outputs are shrunk to the text width, never cut."""
    words = run("pdftotext", "-bbox", str(pdf), "-")
    page_width = float(re.search(r'<page width="([\d.]+)"', words).group(1))
    right_edge = page_width - 15 / 25.4 * 72  # the 15 mm right margin of REPORT_CSS
    assert "col29" in words and "w" in words
    assert max(float(x) for x in re.findall(r'xMax="([\d.]+)"', words)) <= right_edge + 1
    equation = next(line for line in run("pdftotext", "-layout", str(pdf), "-").splitlines()
                    if line.lstrip().startswith("𝐿 ="))  # MathML's italic L
    assert equation.count("+") == 39, f"the 40 terms, not the first few: {equation}"


def monospace_words(pdf, start):
    """``(size in pt, yMin)`` of each word of the PDF that begins with ``start``, printed in
    DejaVu Sans Mono (its size from its width: 0.602 em a character)."""
    words = re.findall(r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)<',
                       run("pdftotext", "-bbox", str(pdf), "-"))
    return [((float(x1) - float(x0)) / (0.602 * len(word)), float(y0))
            for x0, y0, x1, word in words if word.startswith(start)]


def test_text_output_that_stays_too_wide_wraps_in_print():
    """What shrinking to TEXT_FLOOR leaves too wide wraps, at spaces (not JupyterLab's
    break-all), a path inside itself."""
    print_css = re.sub(r"/\*.*?\*/", "", REPORT_CSS, flags=re.S).split("@media print", 1)[1]
    assert re.search(r"\.jp-RenderedText pre \{\s*white-space: pre-wrap; word-break: normal; "
                     r"overflow-wrap: anywhere; \}", print_css)


def test_pdf_shrinks_text_output_to_80_percent_at_most_then_wraps_it(pdf):
    """Code is 8.5 pt, and 94 characters of it fit the column: a line of 109 shrinks to fit on one
    line (7.3 pt); lines of 139 and 208 stop at 80% (6.8 pt; 139 went down to 5.7 pt) and wrap,
    at spaces; a path of 184 characters breaks inside itself. All within the margins (above)."""
    code_pt = 8.5
    fits = monospace_words(pdf, "abcdefghi")
    assert len(fits) == 11 and len({y for _, y in fits}) == 1, fits
    assert all(TEXT_FLOOR * code_pt < size < code_pt - 0.5 for size, _ in fits), fits
    for start, count in (("jklmnopqr", 14), ("col", 30)):
        wraps = monospace_words(pdf, start)
        assert len(wraps) == count and len({y for _, y in wraps}) == 2, wraps
        assert all(abs(size - TEXT_FLOOR * code_pt) < 0.05 for size, _ in wraps), wraps
    path = "runs/" + "/".join(f"folder{i:02d}" for i in range(20))
    lines = run("pdftotext", str(pdf), "-").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("runs/folder00"))
    assert lines[start] != path and lines[start] + lines[start + 1] == path


def test_pdf_wraps_the_cells_of_a_table_far_too_wide_rather_than_shrink_it_unreadable(pdf):
    """25 columns of long words: shrunk to 60% (9 pt to 5.4 pt) at most, then wrapped inside its
    cells, within the margins; shrunk to fit whole they would print under 3 pt."""
    words = run("pdftotext", "-bbox", str(pdf), "-")
    heights = [float(y1) - float(y0) for y0, y1 in re.findall(
        r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">[^<]*(?:wide|value)', words)]
    assert heights and min(heights) > 5, heights


def refused(tmp_path, cells, execute=False):
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": cells})
    with pytest.raises(ReportError) as info:
        build(folder, tmp_path / "out", execute=execute, log=lambda *a: None)
    return str(info.value)


def test_a_failing_cell_names_the_notebook_and_cell(tmp_path):
    message = refused(tmp_path, [cell("code", "x = 1"), cell("code", "raise RuntimeError('boom')")],
                      execute=True)
    assert "01_x.ipynb, cell 2" in message and "RuntimeError: boom" in message


def test_executing_leaves_no_kernel_connection_file(tmp_path, monkeypatch):
    """The connection file (it holds the kernel's key) goes to the temporary folder; the
    default environment is this process's."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("HW3_MARKER", "from the parent")
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": [
        cell("code", "import os\nprint(os.environ['HW3_MARKER'])")]})
    nb = execute_notebook(folder / "01_x.ipynb", tmp_path / "build")
    assert nb.cells[0].outputs[0].text == "from the parent\n"
    assert (tmp_path / "build" / "01_x.ipynb").is_file()
    assert list((tmp_path / "tmp").iterdir()) == []


# the report command with the data check left out (the notebook below needs no data)
REPORT_WITHOUT_DATA = """import sys, hw3lib.report
hw3lib.report.download = lambda root: None
from hw3lib.__main__ import main
sys.exit(main(sys.argv[1:]))"""


@pytest.mark.parametrize("interrupt", ["SIGTERM to the command", "Ctrl-C to its process group"])
def test_an_interrupted_report_shuts_its_kernel_down_and_says_so_in_one_line(tmp_path,
                                                                             interrupt):
    """Interrupted while a cell runs: exit 130, one line, the kernel gone, no connection file
    left in the temporary folder, no report written."""
    (tmp_path / "tmp").mkdir()
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": [cell("code", (
        "import os, pathlib, time\npathlib.Path('pid.tmp').write_text(str(os.getpid()))\n"
        "os.replace('pid.tmp', 'kernel.pid')\ntime.sleep(600)"))]})
    proc = subprocess.Popen(
        [sys.executable, "-c", REPORT_WITHOUT_DATA, "report", "--notebooks", str(folder),
         "--out", str(tmp_path / "out")], start_new_session=True, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp"),
             "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    deadline = time.monotonic() + 120
    while not (folder / "kernel.pid").exists():  # the cell is running
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    kernel = int((folder / "kernel.pid").read_text())
    if interrupt == "SIGTERM to the command":
        proc.terminate()
    else:
        os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err == "error: interrupted\n", err
    with pytest.raises(ProcessLookupError):
        os.kill(kernel, 0)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "out" / "hw3_report.html").exists()


def with_output(output, tag="report:1"):
    code = cell("code", "something()", tag)
    code.outputs = [output]
    return code


@pytest.mark.parametrize("output, expected", [
    (new_output("stream", name="stdout", text="data in /home/ann/fruits/Data_train\n"),
     "absolute path '/home/ann/fruits/Data_train'"),
    (new_output("display_data", data={"text/plain": "see C:\\Users\\ann"}), "absolute path"),
    (new_output("stream", name="stderr", text="UserWarning: glyph missing\n"), "stderr"),
    (new_output("stream", name="stderr", text=(  # the warning said, not the file that warned
        "/home/ann/.venv/lib/python3.11/site-packages/IPython/core/pylabtools.py:158: UserWarning: "
        "Glyph 24040 (\\N{CJK UNIFIED IDEOGRAPH-5DE8}) missing from font(s) DejaVu Sans.\n"
        "  fig.canvas.print_figure(bytes_io, **kw)\n")),
     "('UserWarning: Glyph 24040 (\\\\N{CJK UNIFIED IDEOGRAPH-5DE8}) missing from font(s) DejaVu Sans.')"),
    (new_output("stream", name="stdout", text="Traceback (most recent call last):\n"),
     "traceback"),
    (new_output("error", ename="KeyError", evalue="'x'", traceback=[]), "KeyError"),
    (new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {},
                                      "text/plain": "HBox()"}), "widget"),
])
def test_a_leaking_output_is_refused_naming_the_cell(tmp_path, output, expected):
    message = refused(tmp_path, [cell("md", "x", "report:2"), with_output(output)])
    assert "01_x.ipynb, cell 2 ('something()')" in message and expected in message


def one_cell_per_section(text):
    """Code cells with stored outputs ``text`` and the section key, one per section."""
    return [with_output(new_output("stream", name="stdout", text=f"{text} {key}\n"),
                        tag=f"report:{key}") for key in SECTIONS]


def heading_levels(page):
    return [int(level) for level in re.findall(r"<h([1-6])[\s>]", page)]


def test_headings_written_as_h2_in_the_notebooks_skip_no_level(tmp_path):
    """Authors write "##" under their notebook's "#" title: it becomes <h3> right under the
    section's <h2>, not <h4> (a skipped level); "###" under it <h4>; "#" in fenced code is no
    heading."""
    narrative = cell("md", "## Receptive fields\n\n```python\n# a comment\n```\n\n"
                           "### The backward pass", "report:1")
    nb = new_notebook(cells=[narrative, *one_cell_per_section("x")])
    page = to_html(assemble([("01_x.ipynb", nb)], [("seed", "0")]), tmp_path)
    levels = heading_levels(page)
    assert levels.count(1) == 1 and levels[0] == 1
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:])), levels
    assert "<h3>Receptive fields</h3>" in page and "<h4>The backward pass</h4>" in page


def test_urls_and_relative_paths_are_not_absolute_paths():
    text = "see https://example.org/a/b, data/Data_train/x.png, 3/4 and and/or"
    assert assemble([("01_x.ipynb", new_notebook(cells=one_cell_per_section(text)))], [])


def test_bad_tags_empty_sections_and_silent_cells_are_refused(tmp_path):
    assert "report:5" in refused(tmp_path, [cell("md", "x", "report:5")])
    assert "has the tags ['report']; give it one of report:summary, report:1" in refused(
        tmp_path, [cell("md", "x", "report")])
    assert "no cells are tagged report:summary, report:2, report:3, report:4" in refused(
        tmp_path, [cell("md", "x", "report:1")])
    assert "has no output" in refused(tmp_path, [cell("code", "x = 1", "report:1")])


@pytest.mark.parametrize("latex", [r"\notacommand{x}", r"a & b", r"\frac{1}{"])
def test_unconvertible_latex_is_refused_with_the_formula(latex):
    with pytest.raises(ReportError, match=re.escape(repr(latex))):
        latex_to_mathml(latex, "block")


def test_cli_exports_stored_outputs_and_reports_errors(tmp_path, capsys):
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": one_cell_per_section("section")})
    assert cli(["report", "--notebooks", str(folder), "--out", str(tmp_path / "out"),
                "--no-execute"]) == 0
    assert "section 4" in (tmp_path / "out" / "hw3_report.html").read_text(encoding="utf-8")
    assert cli(["report", "--notebooks", str(tmp_path / "none"), "--no-execute"]) == 2
    assert "no notebooks matching" in capsys.readouterr().err


def test_the_intro_says_whether_the_notebooks_were_executed(tmp_path, built):
    assert "were executed from scratch" in built[2]
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": one_cell_per_section("section")})
    html_path, _ = build(folder, tmp_path / "out", execute=False, log=lambda *a: None)
    page = html_path.read_text(encoding="utf-8")
    assert "were not executed for this report" in page and "output stored in them" in page
    assert "executed from scratch" not in page


COURSE_INTRO = ("A LeNet-5 convolutional network written from scratch in NumPy and trained on three "
                "classes (Carambula, Lychee, Pear) of 32×32 images, fed to it as one grey channel. ")


def stamp_cell(config, classes, size):
    """A cell tagged report:stamp holding notebook 06's stamp (stamp_table) of a run of ``config``
    on ``classes`` of images ``size`` (untrained: the stamp names its input, not its weights)."""
    model = config.build_model(len(classes), size)
    run = FitResult(model, {}, 0, None, np.zeros(1), np.ones(1), classes=list(classes), config=config)
    return with_output(new_output("stream", name="stdout", text=(
        f"{stamp_table(run, config, environment=False)}\n")), tag="report:stamp")


def test_the_intro_states_what_the_stamped_run_trained_on():
    """The intro was one fixed sentence naming the course's three classes of 32x32 images in one
    grey channel, whatever notebook 06 was set to and read: a run on RGB images at 64x64, on other
    classes, with wider convolutions, handed in a report whose first sentence was wrong. It says
    what the run of the report's stamp (notebook 06's chosen setting) trained on."""
    course = stamp_cell(TrainConfig(), ["Carambula", "Lychee", "Pear"], (32, 32))
    assert introduction([("06", new_notebook(cells=[course]))]) == COURSE_INTRO
    own = stamp_cell(TrainConfig(mode="RGB", image_size=64, model={"conv_channels": [8, 32]}),
                     ["cat", "dog", "fox", "owl", "yak"], (64, 64))
    assert introduction([("06", new_notebook(cells=[own]))]) == (
        "A LeNet-5 convolutional network, but conv_channels 8/32 (LeNet-5: 6/16), written from "
        "scratch in NumPy and trained on five classes (cat, dog, fox, owl, yak) of 64×64 images, "
        "fed to it as three colour channels (RGB). ")
    many = stamp_cell(TrainConfig(mode="LA"), [f"c{i}" for i in range(12)], (28, 36))
    assert introduction([("06", new_notebook(cells=[many]))]).endswith(
        "12 classes (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11) of 28×36 images, fed to it "
        "as two channels, grey and alpha. ")
    untagged = stamp_cell(TrainConfig(), ["a", "b"], (32, 32))
    untagged.metadata["tags"] = []
    for cells in ([], [untagged], [course, own]):  # no stamped run, or two that differ
        assert introduction([("06", new_notebook(cells=cells))]) == INTRO_UNSTAMPED
    assert introduction([("05", new_notebook(cells=[course])), ("06", new_notebook(cells=[course]))]) == COURSE_INTRO


def test_the_report_starts_with_the_intro_of_its_stamped_run_its_class_names_as_text(tmp_path,
                                                                                     monkeypatch):
    """A class folder's name is no markdown, HTML or math: "$5 bill" stays a dollar, not an
    equation."""
    stamp = stamp_cell(TrainConfig(), ["$5 bill", "*star*", "<b>"], (32, 32))
    cells = [c for c in one_cell_per_section("s") if "report:stamp" not in c.metadata["tags"]]
    folder = write_notebooks(tmp_path / "nb", {"06_x.ipynb": [*cells, stamp]})
    monkeypatch.setattr("hw3lib.report.find_chromium", lambda: None)
    page = build(folder, tmp_path / "out", execute=False, log=lambda *a: None)[0].read_text("utf-8")
    assert ('<p id="introduction">A LeNet-5 convolutional network written from scratch in NumPy '
            "and trained on three classes ($5 bill, *star*, &lt;b&gt;) of 32×32 images, fed to it "
            "as one grey channel. The notebooks 01 to 06 were not executed for this report") in page
    assert "<math" not in page.split('id="section-summary"')[0]


def test_the_stored_notebook_06_stamps_the_course_input_the_intro_names():
    """The intro of the report of the stored notebooks, as the course's defaults train: three
    classes of 32x32 images in one grey channel, LeNet-5 as it is."""
    notebook = nbformat.read(NOTEBOOKS_DIR / "06_results.ipynb", as_version=4)
    assert introduction([("06_results.ipynb", notebook)]) == COURSE_INTRO


def test_a_report_cut_off_while_written_leaves_the_old_one_whole(tmp_path, monkeypatch):
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": one_cell_per_section("section")})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "hw3_report.html").write_text("the old report", encoding="utf-8")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        build(folder, tmp_path / "out", execute=False, log=lambda *a: None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["build", "hw3_report.html"]
    assert (tmp_path / "out" / "hw3_report.html").read_text(encoding="utf-8") == "the old report"


def test_without_chromium_the_html_is_written_and_the_pdf_tool_named(tmp_path, monkeypatch,
                                                                      capsys):
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": one_cell_per_section("section")})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "hw3_report.pdf").write_bytes(b"an old PDF")
    monkeypatch.setattr("hw3lib.report.find_chromium", lambda: None)
    monkeypatch.delenv("HW3_REQUIRE_PDF", raising=False)
    args = ["report", "--notebooks", str(folder), "--out", str(tmp_path / "out"), "--no-execute"]
    assert cli(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "PDF skipped: Chromium is missing; install it with `sudo apt-get install -y "
        "--no-install-recommends chromium fonts-liberation fonts-dejavu-extra fonts-noto-cjk` "
        "and rerun")
    assert (tmp_path / "out" / "hw3_report.html").is_file()
    assert not (tmp_path / "out" / "hw3_report.pdf").exists(), "no stale PDF beside a new HTML"
    monkeypatch.setenv("HW3_REQUIRE_PDF", "1")
    assert cli(args) == 2 and "no PDF: Chromium is missing" in capsys.readouterr().err


@pytest.mark.parametrize("args, expected", [
    (["--timeout", "0"], "argument --timeout: must be an integer >= 1, got '0'"),
    (["--timeout", "-5"], "argument --timeout: must be an integer >= 1, got '-5'"),
    (["--out", ""], "argument --out: must name a folder, got an empty string"),
    (["--no-execute", "--timeout", "5"], "--timeout applies to executing the notebooks, not to "
                                         "--no-execute: leave one of them out"),
    (["--no-execute", "--timeout", "1800"], "--timeout applies to executing the notebooks, not to "
                                            "--no-execute: leave one of them out"),  # its default
    (["--out", "{file}"], "--out {file}: {file} is a file, not a folder; choose another --out"),
    (["--out", "{file}/sub"], "--out {file}/sub: {file} is a file, not a folder; choose another --out"),
])
def test_cli_refuses_a_bad_timeout_or_out_before_any_work(tmp_path, monkeypatch, capsys, args,
                                                          expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("hw3lib.report.download", lambda root: pytest.fail("data fetched"))
    (tmp_path / "afile").write_text("not a folder")
    file = str(tmp_path / "afile")
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": one_cell_per_section("section")})
    argv = ["report", "--notebooks", str(folder), *(a.format(file=file) for a in args)]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: " + expected.format(file=file)) and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "nb"], "nothing written"


def test_cli_names_an_out_it_cannot_create_before_any_work(tmp_path, monkeypatch, capsys):
    """Not "[Errno 2] No such file or directory: '/proc/...'", after executing every notebook."""
    monkeypatch.setattr("hw3lib.report.find_notebooks", lambda folder: pytest.fail("notebooks read"))
    out = "/proc/hw3-report-out"  # a folder no one can create
    assert cli(["report", "--no-execute", "--out", out]) == 2
    assert capsys.readouterr().err == (f"error: cannot create --out {out}: No such file or directory; "
                                       "choose a writable folder\n")


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's /sys")
def test_cli_names_an_out_it_cannot_write_in_before_any_work(monkeypatch, capsys):
    """An --out that exists but is read-only (/sys, even to root) is refused before the notebooks
    are read or executed, not with a bare "[Errno 30] ...: 'report/build'" after the first one."""
    monkeypatch.setattr("hw3lib.report.find_notebooks", lambda folder: pytest.fail("notebooks read"))
    assert cli(["report", "--no-execute", "--out", "/sys"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write to --out /sys: ") and err.endswith(
        "; choose a writable folder\n"), err


def test_cli_checks_the_data_before_executing(tmp_path, monkeypatch, capsys):
    (tmp_path / "data" / "Data_train").mkdir(parents=True)
    (tmp_path / "data" / "Data_train" / "stray.png").write_bytes(b"not the dataset")
    monkeypatch.setenv("HW3_DATA", str(tmp_path / "data"))
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": [cell("code", "x = 1")]})
    assert cli(["report", "--notebooks", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "differ from the manifest" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "nothing is executed on data that fails its check"


def test_cli_refuses_ones_own_images_without_advising_to_delete_them(tmp_path, monkeypatch,
                                                                     capsys):
    """HW3_DATA at one's own images (which the notebooks take): the report said "Fix: move or
    delete them, then download again". It says that the report runs on the course's data, and
    how to export without deleting anything."""
    own = tmp_path / "mine"
    for split in ("Data_train", "Data_test"):
        (own / split / "Apple").mkdir(parents=True)
        Image.new("L", (64, 64)).save(own / split / "Apple" / "a.png")
    monkeypatch.setenv("HW3_DATA", str(own))
    monkeypatch.setattr("hw3lib.report.download", lambda root: pytest.fail("download reached"))
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": [cell("code", "x = 1")]})
    assert cli(["report", "--notebooks", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {own} (HW3_DATA) holds Data_train/ or Data_test/ that differ "
                          "from the manifest (")
    assert "the report executes the notebooks on the course's data only" in err
    assert "--no-execute" in err and "delete" not in err
    assert sorted(p.name for p in own.iterdir()) == ["Data_test", "Data_train"]
    assert not (tmp_path / "out").exists()


def test_cli_says_where_it_downloads_a_dataset_it_does_not_find(tmp_path, monkeypatch, capsys):
    """A mistyped HW3_DATA: the failed download must not read as a network problem alone."""
    def offline(dest, *args, **kwargs):
        raise DataError("could not fetch https://example.org/x.png: no network")

    monkeypatch.setattr("hw3lib.report.download", offline)
    monkeypatch.setenv("HW3_DATA", str(tmp_path / "fruit"))
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": [cell("code", "x = 1")]})
    assert cli(["report", "--notebooks", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().out == (f"no dataset at {tmp_path / 'fruit'} (HW3_DATA): "
                                       "downloading it there\n")
    (tmp_path / "fruit" / "train").mkdir(parents=True)  # a copy under the loader's other names:
    assert cli(["report", "--notebooks", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "downloading it there" not in capsys.readouterr().out  # not said, then refused to rename


def test_the_real_notebooks_export_with_every_section_and_no_blank_page(tmp_path):
    """The project's own notebooks 01-06, from their stored outputs: every section is filled,
    nothing leaks, no PDF page is empty (a forced page break after a full page makes one) and
    no page starts with a figure's or a table's caption, what it captions left at the foot of the
    page before."""
    html_path, pdf_path = build(execute=False, out_dir=tmp_path, log=lambda *a: None)
    page = html_path.read_text(encoding="utf-8")
    assert all(f'id="section-{key}"' in page for key in ("1", "2", "3", "4", "stamp"))
    missing = missing_pdf_tools(pdf_path)
    if missing and os.environ.get("HW3_REQUIRE_PDF") != "1":
        pytest.skip(f"missing {', '.join(missing)}; `make system-deps` installs them")
    pages = int(re.search(r"Pages:\s+(\d+)", run("pdfinfo", str(pdf_path))).group(1))
    for number in range(1, pages + 1):
        words = run("pdftotext", "-f", str(number), "-l", str(number), str(pdf_path), "-").split()
        assert words != [str(number), "/", str(pages)], f"page {number} of {pages} is blank"
        first = re.search(r'<word xMin="[\d.]+" yMin="([\d.]+)"[^>]*>([^<]*)<', run(
            "pdftotext", "-bbox", "-f", str(number), "-l", str(number), str(pdf_path), "-"))
        top = 16 / 25.4 * 72  # the 16 mm top margin of REPORT_CSS
        assert not (first[2] in ("Figure:", "Table:") and float(first[1]) < top + 20), \
            f"page {number} starts with a caption whose figure or table is on page {number - 1}"


FAKE_CHROMIUM = """#!/bin/sh
# a Chromium whose helper goes on writing into the --user-data-dir after a Ctrl-C, as the
# real one's do for a moment
for arg; do case $arg in --user-data-dir=*) profile=${arg#--user-data-dir=};; esac; done
mkdir -p "$profile/Default"
(trap '' INT TERM; while :; do mkdir -p "$profile/Default"; : > "$profile/Default/f$$"; done) &
: > "$profile/../started"
sleep 60
"""


def test_ctrl_c_while_chromium_prints_is_130_and_leaves_no_temporary_folder(tmp_path):
    """A Ctrl-C at the terminal reaches the whole process group: it was status 2, "error: [Errno
    39] Directory not empty: 'Default'", with hw3-chromium-* left in the temporary folder."""
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": one_cell_per_section("section")})
    bin_dir, scratch = tmp_path / "bin", tmp_path / "tmp"
    bin_dir.mkdir()
    scratch.mkdir()
    (bin_dir / "chromium").write_text(FAKE_CHROMIUM)
    (bin_dir / "chromium").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(scratch),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "hw3lib", "report", "--no-execute", "--notebooks",
                             str(folder), "--out", str(tmp_path / "out")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list(scratch.glob("hw3-chromium-*/started")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C
        _, err = proc.communicate(timeout=60)
        time.sleep(0.2)  # a helper left running would have written again by now
        assert (proc.returncode, err) == (130, "error: interrupted\n")
        assert list(scratch.iterdir()) == []
    finally:  # helpers left in this group (the fault tested) would write forever
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


HUNG_CHROMIUM = """#!/bin/sh
# a Chromium that never prints, its pid written beside it
echo $$ > "$(dirname "$0")/pid"
exec sleep 60
"""


def test_a_hung_chromium_is_killed_where_there_are_no_process_groups(tmp_path, monkeypatch):
    """Windows has no os.killpg: the timeout raised AttributeError and left Chromium running."""
    chromium, page = tmp_path / "chromium", tmp_path / "report.html"
    chromium.write_text(HUNG_CHROMIUM)
    chromium.chmod(0o755)
    page.write_text("<html><body>report</body></html>")
    monkeypatch.delattr(os, "killpg")
    with pytest.raises(ReportError, match="did not print the PDF within 1 s"):
        print_pdf(str(chromium), page, tmp_path / "report.pdf", timeout=1)
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "pid").read_text()), 0)


HALF_A_PDF_CHROMIUM = """#!/bin/sh
# a Chromium that writes part of the PDF, then fails (a crash, a full disk, a timeout's kill)
for arg; do case $arg in --print-to-pdf=*) pdf=${arg#--print-to-pdf=};; esac; done
printf '%%PDF-1.4 half a page' > "$pdf"
exit 1
"""


def test_a_pdf_cut_off_while_printed_leaves_no_part_of_it(tmp_path, monkeypatch):
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": one_cell_per_section("section")})
    chromium = tmp_path / "chromium"
    chromium.write_text(HALF_A_PDF_CHROMIUM)
    chromium.chmod(0o755)
    monkeypatch.setattr("hw3lib.report.find_chromium", lambda: str(chromium))
    with pytest.raises(ReportError, match="failed to print hw3_report.pdf"):
        build(folder, tmp_path / "out", execute=False, log=lambda *a: None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["build", "hw3_report.html"]


def test_the_export_warns_of_text_whose_quoted_figures_the_run_no_longer_gives(tmp_path,
                                                                               monkeypatch):
    """A setting changed in notebook 05 (24 epochs to 10): its text still quotes the kept epoch
    23; the notebook's check says so, and the export passes that on instead of exporting in silence."""
    stale = quoted_figures({"the kept epoch": ("23", 10)})
    cells = [*one_cell_per_section("section"),
             with_output(new_output("stream", name="stdout", text=stale + "\n"), tag=None)]
    folder = write_notebooks(tmp_path / "nb", {"05_x.ipynb": cells})
    monkeypatch.setattr("hw3lib.report.find_chromium", lambda: None)
    said = []
    build(folder, tmp_path / "out", execute=False, log=said.append)
    assert ("warning: 05_x.ipynb, cell 7 ('something()'): The text quotes figures this run does "
            "not give; rewrite what it says about: the kept epoch 23 (this run: 10)") in said


@pytest.mark.parametrize("body", ["", "{not json", "[]", '{"nbformat": 4}', "\udcff"])
def test_a_notebook_that_does_not_read_is_named(tmp_path, capsys, body):
    """Not "error: Notebook does not appear to be JSON: ''", naming no file."""
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": one_cell_per_section("section")})
    (folder / "02_y.ipynb").write_bytes(body.encode("utf-8", "surrogateescape"))
    assert cli(["report", "--notebooks", str(folder), "--out", str(tmp_path / "out"),
                "--no-execute"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / '02_y.ipynb'} does not read as a notebook (")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_no_execute_refuses_a_notebook_whose_stored_run_failed_in_an_untagged_cell(tmp_path):
    """The stored outputs after a cell that raised are not those of one whole run (executing
    refuses that cell): --no-execute must not export them as if they were."""
    failed = with_output(new_output("error", ename="NameError", evalue="name 'X' is not defined",
                                    traceback=[]), tag=None)
    message = refused(tmp_path, [failed, *one_cell_per_section("section")])
    assert message.startswith("01_x.ipynb, cell 1 ('something()') holds an error from the "
                              "notebook's last run (NameError: name 'X' is not defined)")
    assert "run the notebook again" in message
    failed.metadata["tags"] = ["raises-exception"]  # an error shown on purpose, as nbclient allows
    write_notebooks(tmp_path / "nb", {"01_x.ipynb": [failed, *one_cell_per_section("section")]})
    assert build(tmp_path / "nb", tmp_path / "out", execute=False, log=lambda *a: None)


@pytest.mark.parametrize("tag", ["Report:3", "REPORT:summary", "report-3", "report_1", "report3",
                                 " report:4"])
def test_a_misspelt_report_tag_is_refused_not_left_out_without_a_word(tmp_path, tag):
    """Left out, its cell would be missing from the report (or its section refused as empty,
    the slip unnamed)."""
    message = refused(tmp_path, [cell("md", "the slipped cell", tag), *one_cell_per_section("x")])
    assert message == ("01_x.ipynb, cell 1 ('the slipped cell') has the tags "
                       f"[{tag!r}]; give it one of report:summary, report:1, report:2, report:3, "
                       "report:4, report:stamp")


def test_tags_that_are_no_slip_for_a_report_tag_are_left_alone():
    cells = [cell("md", "x", tag) for tag in ("parameters", "export", "remove-input", "repr",
                                              "raises-exception", "caption", "newpage")]
    nb = new_notebook(cells=[*cells, *one_cell_per_section("x")])
    assert sum(map(len, report_cells("01_x.ipynb", nb).values())) == len(SECTIONS)


def test_tags_written_as_a_string_are_refused_naming_the_fix():
    nb = new_notebook(cells=[cell("md", "the slipped cell"), *one_cell_per_section("x")])
    nb.cells[0].metadata["tags"] = "report:3"  # by hand: nbformat would refuse to write it
    with pytest.raises(ReportError) as info:
        report_cells("01_x.ipynb", nb)
    message = str(info.value)
    assert "has the tags 'report:3', a string where a list goes; write them as ['report:3']" in message


@pytest.mark.parametrize("in_the_way, expected", [
    ("build", "{out}/build is a file, not a folder; choose another --out"),
    ("hw3_report.html/", "{out}/hw3_report.html is a folder, where the report writes its "
                         "hw3_report.html; move it away or choose another --out"),
    ("hw3_report.pdf/", "{out}/hw3_report.pdf is a folder, where the report writes its "
                        "hw3_report.pdf; move it away or choose another --out"),
])
def test_cli_refuses_what_is_in_the_way_in_out_before_executing_anything(
        tmp_path, monkeypatch, capsys, in_the_way, expected):
    """Not "[Errno 17] File exists: '.../build'" (a cause it is not) or "[Errno 21] Is a
    directory" after executing every notebook."""
    monkeypatch.setattr("hw3lib.report.download", lambda root: pytest.fail("data fetched"))
    monkeypatch.setattr("hw3lib.report.find_notebooks", lambda folder: pytest.fail("notebooks read"))
    out = tmp_path / "out"
    out.mkdir()
    if in_the_way.endswith("/"):
        (out / in_the_way).mkdir()
    else:
        (out / in_the_way).write_text("a file")
    assert cli(["report", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out}: {expected.format(out=out)}\n"


def test_no_execute_warns_of_a_notebook_not_run_in_order_from_the_top(tmp_path):
    """Stored outputs of cells run out of order, or after a cell never run, may not be those of
    one run: said, as a warning naming the cell (the report is written all the same)."""
    cells = [cell("code", "a = 1"), cell("code", "b = 2"), cell("code", ""),
             *one_cell_per_section("section")]
    for count, code in enumerate(c for c in cells if c.source.strip()):
        code.execution_count = count + 1
    cells[2].execution_count = 2  # an empty cell run: the kernel gives it the count before, 2
    said = []
    folder = write_notebooks(tmp_path / "nb", {"01_x.ipynb": cells})
    build(folder, tmp_path / "out", execute=False, log=said.append)
    assert not [line for line in said if line.startswith("warning:")]  # in order; the empty cell aside
    # counts of the cells a = 1, b = 2 and the first section's (cell 4, 'something()')
    for counts, expected in (((1, 2, 1), "cell 4 ('something()') was run out of order (execution "
                                         "count 1, after 2) in the stored outputs"),  # restarted
                             ((1, None, 3), "cell 2 ('b = 2') was not run in the stored outputs"),
                             # a scratch cell (EPOCHS = 3, say) run between them, deleted since:
                             # the outputs are not those of the code that the notebook holds
                             ((1, 3, 4), "cell 2 ('b = 2') was run after code the notebook does "
                                         "not hold (execution count 3, after 1: a cell deleted "
                                         "since, or run twice) in the stored outputs"),
                             ((9, 2, 3), "cell 1 ('a = 1') was run after code the notebook does "
                                         "not hold (execution count 9, the first: the kernel ran "
                                         "code before it) in the stored outputs")):
        cells[0].execution_count, cells[1].execution_count, cells[3].execution_count = counts
        write_notebooks(folder, {"01_x.ipynb": cells})
        said.clear()
        assert build(folder, tmp_path / "out", execute=False, log=said.append)[0].is_file()
        assert said[0] == (f"warning: 01_x.ipynb, {expected}: they may not be those of one whole "
                           "run; Restart and Run All, or export without --no-execute")


def test_no_execute_stamps_the_data_its_stored_outputs_came_from_not_hw3_data(tmp_path,
                                                                              monkeypatch):
    """Notebooks run on one's own images, exported with --no-execute where HW3_DATA is the
    course's copy (or unset): the stamp named the course's data beside numbers that are not its
    run. It names the data of the stored stamp (notebook 06's stamp_table()), and whose it is."""
    from hw3lib.folders import MANIFEST_PATH
    course = hashlib.sha256(MANIFEST_PATH.read_bytes()).hexdigest()
    own = "ab" * 32
    stamp = with_output(new_output("stream", name="stdout", text=(
        f"item             value\nDataset SHA-256  {own}\nPlatform  Linux\n")), tag=None)
    folder = write_notebooks(tmp_path / "nb", {"06_x.ipynb": [*one_cell_per_section("s"), stamp]})
    monkeypatch.setattr("hw3lib.report.find_chromium", lambda: None)
    monkeypatch.setattr("hw3lib.stamp.dataset_sha256", lambda root: course)  # HW3_DATA's
    html_path, _ = build(folder, tmp_path / "out", execute=False, data_root=tmp_path,
                         log=lambda *a: None)
    page = html_path.read_text(encoding="utf-8")
    assert f"<th>Dataset SHA-256</th><td>{own}, not the course's data</td>" in page
    assert course not in page
    stamp.outputs[0].text = stamp.outputs[0].text.replace(own, course)
    write_notebooks(folder, {"06_x.ipynb": [*one_cell_per_section("s"), stamp]})
    page = build(folder, tmp_path / "out", execute=False, log=lambda *a: None)[0].read_text("utf-8")
    assert f"<th>Dataset SHA-256</th><td>{course}, the course's data</td>" in page
    folder = write_notebooks(tmp_path / "nb2", {"06_x.ipynb": one_cell_per_section("s")})
    page = build(folder, tmp_path / "out", execute=False, log=lambda *a: None)[0].read_text("utf-8")
    assert "<th>Dataset SHA-256</th><td>not named in the stored outputs" in page


def test_the_report_itself_lists_the_exports_warnings_under_its_introduction(tmp_path,
                                                                             monkeypatch):
    """Notebook 05 run with another setting, exported: the warning scrolled by on the terminal
    (inside `make report`'s output) while the page handed in showed the new numbers beside text
    quoting the old ones in silence. The page says it too; one without warnings says nothing."""
    stale = quoted_figures({"the kept epoch": ("23", 10)})
    cells = [*one_cell_per_section("section"),
             with_output(new_output("stream", name="stdout", text=stale + "\n"), tag=None)]
    folder = write_notebooks(tmp_path / "nb", {"05_x.ipynb": cells})
    monkeypatch.setattr("hw3lib.report.find_chromium", lambda: None)
    page = build(folder, tmp_path / "out", execute=False, log=lambda *a: None)[0].read_text("utf-8")
    intro, summary = page.index('id="title"'), page.index('id="section-summary"')
    warned = page.index('id="warnings"')
    assert intro < warned < summary
    assert ("<li>05_x.ipynb, cell 7 ('something()'): The text quotes figures this run does not "
            "give; rewrite what it says about: the kept epoch 23 (this run: 10)</li>") in page
    cells = one_cell_per_section("section")
    for count, code in enumerate(c for c in cells if c.cell_type == "code"):
        code.execution_count = count + 1  # run in order: nothing to warn of
    folder = write_notebooks(tmp_path / "nb2", {"05_x.ipynb": cells})
    page = build(folder, tmp_path / "out", execute=False, log=lambda *a: None)[0].read_text("utf-8")
    assert 'id="warnings"' not in page and "Warning:" not in page


def test_no_execute_warns_of_stored_outputs_computed_from_other_data(tmp_path, monkeypatch):
    """Notebooks run on one's own images, exported with --no-execute: the report's text, written
    about the course's fruit images, stands above numbers computed from others. The export says so,
    on the terminal and in the report; the course's data gives no such warning."""
    from hw3lib.folders import MANIFEST_PATH
    course = hashlib.sha256(MANIFEST_PATH.read_bytes()).hexdigest()
    own = "ab" * 32
    stamp = with_output(new_output("stream", name="stdout", text=f"Dataset SHA-256  {own}\n"),
                        tag=None)
    cells = [*one_cell_per_section("s"), stamp]
    for count, code in enumerate(cells):
        code.execution_count = count + 1
    folder = write_notebooks(tmp_path / "nb", {"06_x.ipynb": cells})
    monkeypatch.setattr("hw3lib.report.find_chromium", lambda: None)
    said = []
    page = build(folder, tmp_path / "out", execute=False, log=said.append)[0].read_text("utf-8")
    warning = ("06_x.ipynb, cell 7 ('something()'): the stored outputs were computed from data "
               f"other than the course's (Dataset SHA-256 {own}), so they are not the course's "
               "results; run the notebooks on the course's data, or export without --no-execute")
    assert f"warning: {warning}" in said and f"<li>{warning}</li>" in page
    stamp.outputs[0].text = f"Dataset SHA-256  {course}\n"
    write_notebooks(folder, {"06_x.ipynb": cells})
    said.clear()
    build(folder, tmp_path / "out", execute=False, log=said.append)
    assert not [line for line in said if line.startswith("warning:")]
