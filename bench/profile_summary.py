"""Summarise a py-spy ``--format raw`` profile: the functions with the most samples.

    python -m bench.profile_summary bench/results/run/relay.profile.txt [--top 25] [--match relay/]

Each line of the input is ``frame;frame;...;frame COUNT`` (outermost first).
"Self" counts samples where the function is the innermost frame; "total"
counts samples where it is anywhere on the stack (once per sample).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({path})"


def raw_stacks(path: Path) -> Iterator[tuple[str, int]]:
    """Each ``frame;frame;... COUNT`` line of a py-spy raw profile as (stack, count)."""
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack:
            yield stack, int(count_text)


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for stack, count in raw_stacks(path):
        frames = [_name(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    return samples, own, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only functions whose file contains this")
    args = parser.parse_args()
    samples, own, total = summarise(args.profile)
    print(f"{samples} samples")
    for title, counter in (("self", own), ("total", total)):
        print(f"\n-- by {title} --")
        shown = [(name, n) for name, n in counter.most_common() if args.match in name]
        for name, count in shown[: args.top]:
            print(f"{100 * count / samples:6.1f}%  {name}")


if __name__ == "__main__":
    main()
