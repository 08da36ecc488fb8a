"""A study worker with the fake generator, as a process: what tests and the scale
benchmark start many of, on one study, to check that every row runs exactly once.

    python -m qeuopt.testing.worker STUDY.toml --seconds 0.5 [--worker] [--wait S]

It runs :meth:`qeuopt.run.study.Study.run` exactly as ``qeuopt run`` / ``qeuopt worker``
do, with a generator that sleeps ``--seconds`` per grid instead of using a GPU, and prints
one JSON line: the trial numbers it generated, its wall time and the stores' time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qeuopt.testing.worker")
    parser.add_argument("study")
    parser.add_argument("--seconds", type=float, default=0.0, help="sleep per grid (a GPU's time)")
    parser.add_argument("--worker", action="store_true", help="join an existing study (qeuopt worker)")
    parser.add_argument("--wait", type=float, help="as `qeuopt run --wait`")
    args = parser.parse_args(argv)

    from qeuopt.errors import QeuoptError
    from qeuopt.run.study import Study
    from qeuopt.testing.fake import FakeGenerator, FakeScorer

    start = time.perf_counter()
    generator = FakeGenerator(seconds=args.seconds)
    try:
        summary = Study.from_file(args.study).run(
            generator, FakeScorer(), progress=False, wait_s=args.wait, create=not args.worker
        )
    except QeuoptError as err:
        print(f"qeuopt: {err}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    print(
        json.dumps(
            {
                "ran": summary.ran,
                "complete": summary.total,
                "wall": wall,
                "generate": summary.timings.generate,
                "unfinished": list(summary.unfinished),
            }
        )
    )
    return 3 if summary.unfinished else 0


if __name__ == "__main__":
    sys.exit(main())
