"""Online vs offline REGNN on the same split with the same REACT metrics.

    python benchmarks/eval_online.py --online RUN_ONLINE --offline RUN_OFFLINE --data DATA

Both runs are trained on the same data with the same config (``regnn train --config demo``
with and without ``--online``). The online predictions are generated through the streaming
path. Prints the table and ``os.getloadavg()``; writes ``--out/online_eval.json``.
"""

from __future__ import annotations

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

import argparse
import json
import os

from regnn.online.evaluate import evaluate_online, format_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--online", required=True, help="online run (regnn train --online)")
    ap.add_argument("--offline", help="offline run to compare with")
    ap.add_argument("--data", required=True, help="dataset root")
    ap.add_argument("--split", default="test")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for predictions and online_eval.json")
    args = ap.parse_args()
    print("load average at start:", os.getloadavg())
    result = evaluate_online(args.online, args.data, args.split, args.offline, args.out,
                             k=args.k, seed=args.seed)
    print(format_table(result))
    if "online_minus_offline" in result:
        print("online - offline:", json.dumps({k: round(v, 4) for k, v in
                                               result["online_minus_offline"].items()}))
    print("load average at end:", os.getloadavg())


if __name__ == "__main__":
    main()
