"""The shop end to end on this machine, with embedded defaults: what `make demo` runs.

Claims your slice, brings the shop up as local processes (Azurite, orders, billing,
notifier), places three orders over HTTP, waits for their invoices, shows what happened
(show.py), and stops everything again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEVSLICE = [sys.executable, "-m", "devslice"]
ORDERS = [("c-anna", 42), ("c-ben", 7.5), ("c-anna", 12)]


def devslice(*args: str) -> str:
    print(f"$ devslice {' '.join(args)}", flush=True)
    done = subprocess.run([*DEVSLICE, *args], cwd=HERE, text=True, capture_output=True,
                          env={**os.environ, "DEVSLICE_RUNTIME": "local"})
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(done.returncode)
    return done.stdout


def main() -> None:
    devslice("slice", "claim")
    try:
        devslice("up")
        for customer, amount in ORDERS:
            request = urllib.request.Request(
                "http://127.0.0.1:8080/orders", method="POST",
                data=json.dumps({"customer": customer, "amount": amount}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                print(f"POST /orders {customer} {amount} -> {answer.status} "
                      f"{json.loads(answer.read())['orderId']}")
        time.sleep(2)  # billing writes the invoices a moment later (show.py lists what is there)
        subprocess.run([sys.executable, "show.py"], cwd=HERE, check=True)
        devslice("verify")
    finally:
        devslice("down")


if __name__ == "__main__":
    main()
