"""The report notebook exported: one self-contained HTML page, and a PDF of it.

:func:`to_html` renders the report notebook (:func:`hw3lib.report.assemble`) as one HTML page
styled by :data:`REPORT_CSS`: code hidden, figures embedded as base64, equations as MathML
(:func:`latex_to_mathml`), each inline one on one line with the punctuation touching it
(:func:`keep_math_words`), markdown headings moved under the sections' ``<h2>``
(:func:`top_heading_level`), Chinese text marked ``lang="zh-Hant"`` (:func:`mark_chinese`); no
JavaScript, nothing fetched. :func:`print_pdf` prints that page to an A4 PDF with headless
Chromium (:func:`find_chromium`), shrinking what is wider than the page
(:data:`FIT_TO_WIDTH`); the PDF is written whole or not at all. Both raise
:class:`hw3lib.notebooks.ReportError`.
"""
import contextlib
import html
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .atomic import atomic_write
from .notebooks import ReportError

REPORT_NAME = "hw3_report"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
PDF_INSTALL = ("sudo apt-get install -y --no-install-recommends chromium fonts-liberation "
               "fonts-dejavu-extra fonts-noto-cjk")

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
.jp-RenderedHTMLCommon p { orphans: 3; widows: 3; } /* a paragraph runs on to the next page, not
   whole to it, which left the rest of a page empty; at least three lines on each */
img { max-width: 100%; height: auto; break-inside: avoid; }
.jp-CodeCell:has(img) + .jp-MarkdownCell { break-before: avoid; } /* a caption stays with its figure */
.celltag_caption { break-before: avoid; } /* and a table's with its table */
.celltag_caption > p:first-child { font-size: 9.5pt; } /* the caption: celltag_ marks the cell's rendered markdown */
.jp-OutputArea-output, .jp-Cell-outputWrapper, math[display="block"] { break-inside: avoid; }
.jp-RenderedHTMLCommon table { width: auto; max-width: 100%; font-size: 9pt; break-inside: avoid;
  margin-left: 0; } /* at the text's margin, as the printed tables are, not Jupyter's centred */
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { overflow-wrap: break-word; }
.jp-RenderedHTMLCommon td:first-child, .jp-RenderedHTMLCommon th:first-child { text-align: left; }
.jp-RenderedHTMLCommon th:has(+ td) { white-space: nowrap; } /* a row's name (the stamp's) stays
   whole: beside a long value it broke as "Dataset SHA-" over "256" */
.jp-RenderedText pre { white-space: pre; overflow-x: auto; }
math { font-family: "DejaVu Math TeX Gyre", math; font-size: 1.1em; }
.math-word { white-space: nowrap; } /* keep_math_words */
math[display="block"] { margin: 0.6em 0; overflow-x: auto; }
@media print { /* no scroll bars on paper: FIT_TO_WIDTH shrinks what is too wide */
  .jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output, .jp-RenderedText pre, math {
    overflow: visible !important; }
  .jp-RenderedText pre { /* what is too wide at TEXT_FLOOR wraps at spaces, paths anywhere */
    white-space: pre-wrap; word-break: normal; overflow-wrap: anywhere; } }
mtd[columnalign="left"] { text-align: left; }
mtd[columnalign="right"] { text-align: right; }
"""

# The outputs that the HTML shows as an <img>, each with its alt text (output.metadata["alt"]):
# nbconvert's own wrote "No description has been provided for this image" for JPEG and SVG.
IMAGES = ("image/png", "image/jpeg", "image/svg+xml")
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<style type="text/css">{{ resources.report_css }}</style>
{%- endblock html_head_css -%}
{%- macro image(output, mime, base64) -%}
<div class="jp-RenderedImage jp-OutputArea-output">
<img src="data:{{ mime }};base64,{{ base64 | escape_html }}"
     alt="{{ output.metadata.alt | escape_html }}">
</div>
{%- endmacro -%}
{%- block data_png scoped -%}{{ image(output, 'image/png', output.data['image/png']) }}{%- endblock -%}
{%- block data_jpg scoped -%}{{ image(output, 'image/jpeg', output.data['image/jpeg']) }}{%- endblock -%}
{%- block data_svg scoped -%}
{{ image(output, 'image/svg+xml', output.data['image/svg+xml'] | text_base64) }}
{%- endblock -%}
"""


# what a sign may follow and still be a binary operator: a closing bracket, a bar (it closes as
# often as it opens), a postfix operator
_ENDS_A_TERM = frozenset(")]}⟩⌉⌋|‖!′″")
# an operator, then a + or − right after it (latex2mathml writes both as character references)
_SIGN_AFTER_OPERATOR = re.compile(r"(<mo\b[^>]*>([^<]*)</mo>)<mo>(&#x02212;|&#x0002B;)</mo>")


def _mark_signs(mathml):
    """``mathml`` with each + or − right after another operator (an opening bracket, "=", ",")
    in the prefix form, set close to what follows as in TeX: latex2mathml leaves it infix,
    spaced as the minus of a − b ("( − 4, 1)")."""
    return _SIGN_AFTER_OPERATOR.sub(
        lambda m: m.group() if html.unescape(m.group(2)) in _ENDS_A_TERM
        else f'{m.group(1)}<mo form="prefix">{m.group(3)}</mo>', mathml)


# a function's name as latex2mathml writes \log, \ln, ...: after what ends a term, if it does
# (not an operator), and before its "(", if it has one
_FUNCTION_NAME = re.compile(r"(</(?!mo>)m\w+>)?(<mi>(?:arccos|arcsin|arctan|arg|cos|cosh|cot|coth|"
                            r"csc|deg|dim|exp|hom|ker|lg|ln|log|sec|sin|sinh|tan|tanh)</mi>)"
                            r"(<mo[^>]*>&#x00028;)?")
THIN_SPACE = '<mspace width="0.167em"></mspace>'


def _space_functions(mathml):
    """``mathml`` with a thin space around each function's name (\\log, \\ln, ...), as TeX
    sets it: after a term before it, and before its argument but a "(": latex2mathml wrote
    none, so Y log p printed as "Ylogp"."""
    def spaced(match):
        before, name, paren = match.groups()
        return (before + THIN_SPACE if before else "") + name + (paren or THIN_SPACE)
    return _FUNCTION_NAME.sub(spaced, mathml)


MATHML = "http://www.w3.org/1998/Math/MathML"
_SCRIPTED = ("msub", "msup", "msubsup", "munder", "mover", "munderover")
_ORDINARY = ("/", ".", "|", "‖")  # symbols that TeX sets without space, MathML as operators


def _tight_scripts(mathml):
    """``mathml`` with no space around the operators of sub- and superscripts, nor around
    /, . and bars, as TeX sets them: latex2mathml left them spaced as on the line, "θ_{t − 1}",
    "∑_{n = 1}", "g_{n, f}", "1 / (1 − μ)", "W .reshape", "max | a |"."""
    root = ET.fromstring(mathml.replace(f' xmlns="{MATHML}"', "", 1))  # tags without a prefix
    scripts = (mo for scripted in root.iter() if scripted.tag in _SCRIPTED
               for script in scripted[1:] for mo in script.iter("mo"))
    for mo in itertools.chain(scripts, (mo for mo in root.iter("mo") if mo.text in _ORDINARY)):
        mo.set("lspace", "0")
        mo.set("rspace", "0")
    return ET.tostring(root, encoding="unicode").replace("<math", f'<math xmlns="{MATHML}"', 1)


def latex_to_mathml(latex, display):
    """MathML for a LaTeX formula, ``display`` ``"block"`` or ``"inline"``; Chromium and
    Firefox render it without JavaScript. ``aligned`` is read as ``align*``; a sign after an
    operator is one (:func:`_mark_signs`), a function's name is spaced
    (:func:`_space_functions`), scripts are tight (:func:`_tight_scripts`)."""
    from latex2mathml.converter import convert

    source = latex.replace("{aligned}", "{align*}")
    try:
        mathml = _tight_scripts(_space_functions(_mark_signs(convert(source, display=display))))
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


_INLINE_MATH = re.compile(r'<math\b[^>]*\bdisplay="inline".*?</math>', re.S)
_TOUCHING = re.compile(r"[^\s<>]*")  # text touching an equation: no space, no tag between


def keep_math_words(page):
    """``page`` with each inline equation and the text touching it on either side ("(",
    "),", an equation right after) wrapped in ``<span class="math-word">``, which does not
    break: Chromium broke a line between an equation and the comma after it, or the "("
    before it, as it does not within a word. In time linear in the page: found from each
    ``<math``, not by a pattern tried at every character (the page's images, base64 runs of
    up to ~200 KB with no space, took it 4 minutes)."""
    pieces, done = [], 0
    for math in _INLINE_MATH.finditer(page):
        if math.start() < done:  # within the word before
            continue
        start = math.start()
        while start > done and not page[start - 1].isspace() and page[start - 1] not in "<>":
            start -= 1
        end = _TOUCHING.match(page, math.end()).end()
        while (more := _INLINE_MATH.match(page, end)):
            end = _TOUCHING.match(page, more.end()).end()
        pieces += [page[done:start], f'<span class="math-word">{page[start:end]}</span>']
        done = end
    return "".join(pieces) + page[done:]


def to_html(nb, notebooks_dir):
    """The report notebook ``nb`` as one self-contained HTML page (code hidden, images as
    base64, math as MathML, kept on one line with the punctuation touching it by
    :func:`keep_math_words`, Chinese marked by :func:`mark_chinese`); relative image links
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
    return mark_chinese(keep_math_words(page))


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
