"""``python -m hw3lib download``: fetch and verify the course's fruit images (:mod:`hw3lib.download`)."""
from .cli import Parser, add_progress_option, folder, show_progress
from .download import DEFAULT_BASE_URL, download, verify
from .folders import DEFAULT_ROOT, SPLITS, resolve_root
from .images import DataError


def main(argv=None):
    """``python -m hw3lib download [DEST]``: fetch and verify the dataset. Exit status 0; a
    failure raises DataError, which ``python -m hw3lib`` prints as one line, exit status 2."""
    parser = Parser(prog="python -m hw3lib download", description="Fetch and verify the fruit images.")
    parser.add_argument(
        "dest", nargs="?", type=folder, metavar="DEST",
        help=f"target folder; default: $HW3_DATA, then {DEFAULT_ROOT}"
    )
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL", help="folder URL holding Data_train/")
    add_progress_option(parser)
    args = parser.parse_args(argv)
    dest = resolve_root(args.dest)
    before = _copy_there(dest)
    try:
        download(dest, args.base_url, progress=show_progress(args))
    except DataError as err:  # the library's advice names the argument base_url
        err.args = (str(err).replace("base_url", "--base-url"),)
        raise
    if before and not before.ok:
        print(f"restored the course's files that {dest} lacked or held changed ({before})")
    print(f"verified dataset at {dest}")
    return 0


def _copy_there(dest):
    """:func:`~hw3lib.download.verify`'s report on the copy at ``dest`` before the download, which
    fetches the files it lacks and replaces those changed (to say so: a changed image may have
    been changed on purpose); None where it holds no split folder or cannot be read (the
    download then says why)."""
    if not any((dest / name).is_dir() for name in SPLITS.values()):
        return None
    try:
        return verify(dest)
    except (DataError, OSError):
        return None
