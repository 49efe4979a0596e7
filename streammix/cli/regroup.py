"""``streammix regroup LAKE --groups id --out LAKE2``: a lake rewritten by group.

For fits with grouped classes (``streammix fit ... --groups id``, or
``ParquetSource(..., groups="id")``) on lakes whose groups are spread over
many files: :func:`streammix.regroup` shuffles the rows on the group column
with Dask and writes each group into one file, atomically.
"""

from __future__ import annotations

import argparse
import logging

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Rewrite a Parquet lake so that all rows of each group lie in one file (Dask's
shuffle on the group column, then each file sorted by group).  Needed before a
grouped fit when groups are spread over many files, so that the tasks joining
their chunks stay below max_task_rows.  The new lake is written next to --out
and renamed into place when complete.

example:
  streammix regroup lake/ --groups customer_id --out lake_by_customer/
"""


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``regroup`` command; its defaults carry ``func=run``."""
    parser = subparsers.add_parser("regroup", help="rewrite a lake clustered by a group column",
                                   description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lake", metavar="LAKE", help="Parquet file, folder, glob or URL")
    parser.add_argument("--groups", required=True, metavar="COLUMN", help="the group column")
    parser.add_argument("--out", required=True, metavar="LAKE2",
                        help="the folder to write (local; must not exist, see --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out once the new lake is complete")
    parser.add_argument("--files", type=int, default=None, metavar="N",
                        help="number of files to write (default: as many as Dask reads)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    """Execute a parsed ``regroup`` command; returns the exit status."""
    from streammix.data.parquet.regroup import regroup

    out = regroup(args.lake, args.groups, args.out, overwrite=args.overwrite,
                  npartitions=args.files)
    if not args.quiet:
        print(f"wrote {out}")
    return 0
