"""Summarise py-spy collapsed stacks (`--format raw`): where the server's time goes.

    python -m bench.folded FILE.folded [--top 25] [--under FUNC]

Prints, per function, the share of samples it was on the stack (inclusive) and on top
(self), and the share of each thread (the event loop vs aiosqlite's worker threads).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_APP = re.compile(r"\((server|schema|sync)/")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


#: (bucket, substrings): a sample goes to the first bucket with a frame matching any.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQL: SQLAlchemy + driver + DB wait", ("sqlalchemy/", "psycopg/", "aiosqlite/")),
    ("GraphQL: parse + validate", ("validate_document", "_parse_operation_document")),
    ("GraphQL: variables/argument conversion", ("get_arguments", "coerce_variable_values")),
    ("JSON: response encode", ("encode_json",)),
    ("JSON: request decode", ("json/decoder", "parse_http_body", "parse_json")),
    ("push engine (Python)", ("PushEngine.", "sync/writer.py")),
    ("pull engine (Python)", ("PullEngine.", "_Page.")),
    ("auth + request context", ("get_context",)),
    ("GraphQL: result completion", ("graphql/execution",)),
    ("HTTP server (uvicorn/starlette)", ("uvicorn/", "starlette/")),
)


@dataclass
class Profile:
    total: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    threads: Counter[str] = field(default_factory=Counter)
    buckets: Counter[str] = field(default_factory=Counter)
    #: Samples by the innermost frame of fieldsync's own code (server/, schema/, sync/).
    app: Counter[str] = field(default_factory=Counter)


def bucket(names: list[str]) -> str:
    for label, needles in BUCKETS:
        if any(n in name for name in names for n in needles):
            return label
    return "other (event loop, idle-ish)"


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    return f"{m['func']} ({m['file']})" if m else frame


def load(path: Path, under: str | None = None) -> Profile:
    prof = Profile()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread")), "thread ?")
        names = [_name(f) for f in frames if not f.startswith(("process ", "thread "))]
        if under is not None:
            hits = [i for i, n in enumerate(names) if under in n]
            if not hits:
                continue
            names = names[hits[0]:]
        n = int(count)
        prof.total += n
        prof.threads[thread.split("): ", 1)[-1]] += n
        for name in set(names):
            prof.inclusive[name] += n
        if names:
            prof.own[names[-1]] += n
        prof.buckets[bucket(names)] += n
        prof.app[next((x for x in reversed(names) if _APP.search(x)), "(no fieldsync frame)")] += n
    return prof


def show(prof: Profile, top: int) -> None:
    if not prof.total:
        print("no samples")
        return
    print(f"{prof.total} samples")
    for title, counts in (("breakdown (first matching bucket)", prof.buckets),
                          ("innermost fieldsync frame", prof.app),
                          ("threads", prof.threads), ("inclusive", prof.inclusive),
                          ("self", prof.own)):
        print(f"\n-- {title} --")
        for name, n in counts.most_common(top):
            print(f"{100 * n / prof.total:6.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.folded", description=__doc__)
    p.add_argument("file", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--under", default=None, help="only stacks through this function")
    args = p.parse_args(argv)
    show(load(args.file, args.under), args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
