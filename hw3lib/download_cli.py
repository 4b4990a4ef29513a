"""``python -m hw3lib download``: fetch and verify the course's fruit images (:mod:`hw3lib.download`)."""
from .cli import Parser, add_progress_option, folder, show_progress
from .download import DEFAULT_BASE_URL, SOURCE_COMMIT, SOURCE_REPO, download
from .folders import DEFAULT_ROOT, resolve_root
from .images import DataError


def main(argv=None):
    """``python -m hw3lib download [DEST]``: fetch and verify the dataset. Exit status 0; a
    failure raises DataError, which ``python -m hw3lib`` prints as one line, exit status 2."""
    parser = Parser(prog="python -m hw3lib download", description="Fetch and verify the fruit images.")
    parser.add_argument(
        "dest", nargs="?", type=folder, metavar="DEST",
        help=f"target folder; default: $HW3_DATA, then {DEFAULT_ROOT}"
    )
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL",
                        help="folder URL holding Data_train/ and Data_test/; default: the course's, "
                             f"HW2/Data of github.com/{SOURCE_REPO} at commit {SOURCE_COMMIT[:12]}")
    add_progress_option(parser)
    args = parser.parse_args(argv)
    dest = resolve_root(args.dest)
    try:
        download(dest, args.base_url, progress=show_progress(args), on_restore=lambda before: print(
            f"restored the course's files that {dest} lacked or held changed ({before})"))
    except DataError as err:  # the library's advice names the argument base_url
        err.args = (str(err).replace("base_url", "--base-url"),)
        raise
    print(f"verified dataset at {dest}")
    return 0
