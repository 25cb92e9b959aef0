"""A process that claims a slice through the real CLI the moment the parent says go.

Run by test_contention.py: prints 'ready', waits for the go file, then runs
`devslice -f CONFIG slice claim --owner OWNER -o json` in-process (so start-up cost does not
spread the claims out) and exits with the CLI's exit code.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from devslice.cli.app import run
from devslice.ledger import open_ledger  # noqa: F401 - import the heavy parts before 'ready'
from devslice.ledger.azureblob import AzureBlobLedger  # noqa: F401
from devslice.project import Project  # noqa: F401


def main() -> None:
    config, owner, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    print("ready", flush=True)
    while not go.exists():  # the test's starting gun: every worker claims at the same moment
        time.sleep(0.001)
    code = run(["-f", config, "slice", "claim", "--owner", owner, "-o", "json"])
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
