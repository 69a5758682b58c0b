#!/usr/bin/env python3
"""Render BENCHMARKS.md tables from raw benchmark outputs.

  python3 Benchmarks/report.py micro  results/micro-run*.txt     # `swift package benchmark` text outputs
  python3 Benchmarks/report.py compare results/compare-*.txt     # compare.sh RESULT lines
  python3 Benchmarks/report.py goals  results/micro-run*.txt     # exit 1 when a ratio goal is missed
  python3 Benchmarks/report.py hubs   results/hubs-*.txt          # hubs.sh RESULT lines (hub-bench, ws-bench)
  python3 Benchmarks/report.py echo   results/echo-nio-*.txt      # EchoNIO: mallocs and time per echoed message

Every figure is a median over runs of a per-run value; every ratio is computed inside one run (ours and the
peer measured in the same process or compare.sh pass) and then the median of those ratios is shown, with the
per-run ratios beside it.
"""
import re
import statistics
import sys
from collections import defaultdict

# "Group.case.xN.impl" (case words joined by "_", impl words by "-"); the older "Group/case xN/impl" also parses.
NAME = re.compile(r"^(Parse|Encode|Mask|UTF8|Receive)[./](.+?)[./ ](x\d+)[./]([^.].*)$")
# "EchoNIO.<size>.x<messages>.<impl>": one iteration echoes `messages` messages through a NIO pipeline.
ECHO = re.compile(r"^EchoNIO\.(\d+(?:B|KiB|MiB))\.x(\d+)\.(.+)$")
SCALE = {"#": 1, "K": 1e3, "M": 1e6, "G": 1e9}
TIME = {"ns": 1e-9, "μs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1}


def size_bytes(token):
    m = re.match(r"^(\d+)(B|KiB|MiB)$", token)
    if not m:
        return None
    return int(m.group(1)) * {"B": 1, "KiB": 1024, "MiB": 1 << 20}[m.group(2)]


def parse_micro(path, names=NAME):
    """{name: {"wall": seconds per iteration (p50), "malloc": p50, "malloc_max": p100, "samples": n}}"""
    results = {}
    name = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if names.match(line):
                name = line
                results[name] = {}
                continue
            if name is None or not line.startswith("│"):
                continue
            cells = [c.strip() for c in line.strip("│").split("│")]
            if len(cells) < 9 or cells[0] == "Metric":
                continue
            label, values = cells[0], cells[1:8]
            try:
                numbers = [float(v) for v in values]
            except ValueError:
                continue
            unit = re.findall(r"\(([^()]*)\)", label)
            if label.startswith("Time (wall clock)"):
                results[name]["wall"] = numbers[2] * TIME[unit[-1]]
                results[name]["wall_best"] = numbers[0] * TIME[unit[-1]]
                results[name]["samples"] = int(cells[8])
            elif label.startswith("Malloc (total)"):
                scale = SCALE.get(unit[-1], 1) if unit and unit[-1] in SCALE else 1
                results[name]["malloc"] = numbers[2] * scale
                results[name]["malloc_max"] = numbers[6] * scale
    return {k: v for k, v in results.items() if "wall" in v}


def split(name):
    group, case, batch, impl = NAME.match(name).groups()
    case = case.replace("_", " ") + " " + batch
    impl = impl.replace("-", " ")
    batch = int(batch[1:])
    tokens = case.split()
    size = next((size_bytes(t) for t in tokens if size_bytes(t)), None)
    return group, case, impl, batch, size


def fmt_rate(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def fmt_ratio(values):
    med = statistics.median(values)
    runs = " / ".join(f"{v:.2f}" for v in values)
    return f"**{med:.2f}×** ({runs})" if len(values) > 1 else f"**{med:.2f}×**"


def micro(paths):
    runs = [parse_micro(p) for p in paths]
    names = sorted(set().union(*[r.keys() for r in runs]), key=lambda n: (split(n)[0], split(n)[4] or 0, n))

    def per_run(name, fn):
        return [fn(r[name]) for r in runs if name in r]

    def median_of(name, fn):
        values = per_run(name, fn)
        return statistics.median(values) if values else None

    def ratio(a, b):
        # How many times faster `a` is than `b`, inside each run.
        return [r[b]["wall"] / r[a]["wall"] for r in runs if a in r and b in r]

    cases = defaultdict(dict)
    for n in names:
        group, case, impl, batch, size = split(n)
        cases[(group, case)][impl] = n
    # Runs that used the older naming: map every run's names onto one canonical name per (group, case, impl).
    canonical = {}
    for n in names:
        group, case, impl, _, _ = split(n)
        canonical.setdefault((group, case, impl), n)
    for r in runs:
        for n in list(r.keys()):
            group, case, impl, _, _ = split(n)
            key = canonical[(group, case, impl)]
            if key != n:
                r[key] = r.pop(n)
    cases = defaultdict(dict)
    for (group, case, impl), n in canonical.items():
        cases[(group, case)][impl] = n
    out = []

    def table(title, group, columns, ratios, unit):
        out.append(f"\n### {title}\n")
        head = "| case | " + " | ".join(c for c in columns) + " | " + " | ".join(r[0] for r in ratios)
        head += " | mallocs/item (ours; peer) |"
        out.append(head)
        out.append("|" + "---|" * (2 + len(columns) + len(ratios)))
        for (g, case), impls in sorted(cases.items(), key=lambda kv: (split(next(iter(kv[1].values())))[4] or 0,
                                                                        kv[0][1])):
            if g != group:
                continue
            _, _, _, batch, size = split(next(iter(impls.values())))
            row = [case]
            for column in columns:
                n = impls.get(column)
                if n is None:
                    row.append("–")
                    continue
                wall = median_of(n, lambda v: v["wall"])
                items = batch / wall
                if unit == "bytes":
                    row.append(f"{fmt_rate(items * size)}B/s")
                elif unit == "count":
                    row.append(f"{fmt_rate(items)}/s")
                else:
                    row.append(f"{fmt_rate(items)}/s" + (f" ({fmt_rate(items * size)}B/s)" if size else ""))
            for _, ours, peer in ratios:
                if ours in impls and peer in impls:
                    row.append(fmt_ratio(ratio(impls[ours], impls[peer])))
                else:
                    row.append("–")
            allocs = []
            for column in columns:
                n = impls.get(column)
                if n is not None:
                    m = median_of(n, lambda v: v.get("malloc", float("nan")))
                    allocs.append(f"{m / batch:.3g}")
            row.append("; ".join(allocs))
            out.append("| " + " | ".join(row) + " |")

    table("Parse masked client frames (frames/s, payload bytes/s)", "Parse",
          ["ours FrameParser", "ours Connection", "nio decode", "nio decode+unmask"],
          [("FrameParser ÷ nio decode", "ours FrameParser", "nio decode"),
           ("FrameParser ÷ nio decode+unmask", "ours FrameParser", "nio decode+unmask"),
           ("Connection ÷ nio decode+unmask", "ours Connection", "nio decode+unmask")], "frames")
    table("Encode server frames, header only, payload by reference (frames/s)", "Encode",
          ["ours FrameEncoder", "ours Connection", "nio encoder"],
          [("FrameEncoder ÷ nio", "ours FrameEncoder", "nio encoder"),
           ("Connection ÷ nio", "ours Connection", "nio encoder")], "count")
    table("Masking in place, in cache (bytes/s)", "Mask", ["ours Masking", "nio webSocketMask"],
          [("ours ÷ nio", "ours Masking", "nio webSocketMask")], "bytes")
    table("UTF-8 validation of 64 KiB (bytes/s)", "UTF8", ["ours UTF8Validator", "stdlib String(validating:)"],
          [("ours ÷ stdlib", "ours UTF8Validator", "stdlib String(validating:)")], "bytes")
    table("Connection.receive on echo traffic (messages/s)", "Receive",
          ["ours Connection", "nio decode+aggregate+unmask+validate"],
          [("ours ÷ nio", "ours Connection", "nio decode+aggregate+unmask+validate")], "count")
    print("\n".join(out))
    return runs, cases, ratio, median_of


def goals(paths):
    runs, cases, ratio, median_of = micro(paths)
    failures = []
    lines = ["\n### Goals\n", "| goal | measured (median of runs) | met |", "|---|---|---|"]

    def check(text, value, target, unit, best=None):
        met = value is not None and value >= target
        extra = f" (best sample: {best:.3g}{unit})" if best is not None else ""
        lines.append(f"| {text} | {value:.3g}{unit}{extra} | {'yes' if met else '**no**'} |")
        if not met:
            failures.append(text)

    for case in ("16B x1024", "125B x512"):
        impls = cases.get(("Parse", case), {})
        if "ours FrameParser" in impls and "nio decode" in impls:
            r = statistics.median(ratio(impls["ours FrameParser"], impls["nio decode"]))
            check(f"parse {case.split()[0]} frames ≥ 3× NIO decode (frames/s)", r, 3, "×")
    for case in ("64KiB aligned x1", "64KiB unaligned x1"):
        n = cases.get(("Mask", case), {}).get("ours Masking")
        if n:
            check(f"masking {case.split(' x')[0]} ≥ 20 GB/s", 65536 / median_of(n, lambda v: v["wall"]) / 1e9, 20,
                  " GB/s", 65536 / median_of(n, lambda v: v["wall_best"]) / 1e9)
    n = cases.get(("UTF8", "ascii 64KiB x1"), {}).get("ours UTF8Validator")
    if n:
        check("UTF-8 on ASCII ≥ 5 GB/s", 65536 / median_of(n, lambda v: v["wall"]) / 1e9, 5, " GB/s",
              65536 / median_of(n, lambda v: v["wall_best"]) / 1e9)
    worst = 0.0
    for (group, _), impls in cases.items():
        if group in ("Parse", "Encode"):
            for impl, n in impls.items():
                if impl.startswith("ours"):
                    worst = max(worst, max(r[n].get("malloc_max", 0) for r in runs if n in r))
    lines.append(f"| zero mallocs on our parse and encode paths (max over all samples) | {worst:g} | "
                 f"{'yes' if worst == 0 else '**no**'} |")
    if worst != 0:
        failures.append("mallocs")
    print("\n".join(lines))
    return 1 if failures else 0


def echo(paths):
    """Mallocs per echoed message (p50 per iteration ÷ messages) and time per message, ratios to NIO in-run."""
    runs = [parse_micro(p, ECHO) for p in paths]
    cases = {}
    for run in runs:
        for name in run:
            size, messages, impl = ECHO.match(name).groups()
            cases.setdefault((size_bytes(size), size, int(messages)), set()).add(impl)
    impls = ["ours-WebSocketHandler", "ours-WebSocketHandler-copy", "nio-WebSocketFrameDecoder", "tcp-echo"]
    print("| case | " + " | ".join(f"mallocs/msg {i}" for i in impls) + " | time/msg ours ÷ nio (per run) |")
    print("|---" * (len(impls) + 2) + "|")
    for (_, size, messages) in sorted(cases):
        def name(impl):
            return f"EchoNIO.{size}.x{messages}.{impl}"
        cells = []
        for impl in impls:
            values = [run[name(impl)]["malloc"] / messages for run in runs if name(impl) in run]
            cells.append(f"{statistics.median(values):g}" if values else "—")
        ratios = [run[name(impls[0])]["wall"] / run[name(impls[2])]["wall"] for run in runs
                  if name(impls[0]) in run and name(impls[2]) in run]
        ratio = (f"{statistics.median(ratios):.2f} (" + " / ".join(f"{r:.2f}" for r in ratios) + ")") if ratios else "—"
        print(f"| {size} × {messages} | " + " | ".join(cells) + f" | {ratio} |")


def parse_compare(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("RESULT "):
                rows.append(dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv))
    return rows


def compare(paths):
    runs = [parse_compare(p) for p in paths]
    servers = ["ws-echo", "nio-ws-echo", "nio-tcp-echo", "ws-echo-text", "nio-ws-echo-text"]
    cells = []
    for run in runs:
        for row in run:
            if "conns" in row:
                key = (int(row["conns"]), int(row["inflight"]), int(row["size"]))
                if key not in cells:
                    cells.append(key)

    def values(cell, server, field):
        out = []
        for run in runs:
            for row in run:
                if row.get("label") == server and "conns" in row and \
                        (int(row["conns"]), int(row["inflight"]), int(row["size"])) == cell and row[field] != "NA":
                    out.append(float(row[field]))
        return out

    def med(v):
        return statistics.median(v) if v else None

    def in_run_ratios(cell, a, b, field, invert=False):
        out = []
        for run in runs:
            va = [float(r[field]) for r in run if r.get("label") == a and "conns" in r and
                  (int(r["conns"]), int(r["inflight"]), int(r["size"])) == cell and r[field] != "NA"]
            vb = [float(r[field]) for r in run if r.get("label") == b and "conns" in r and
                  (int(r["conns"]), int(r["inflight"]), int(r["size"])) == cell and r[field] != "NA"]
            if va and vb and va[0] > 0 and vb[0] > 0:
                out.append(vb[0] / va[0] if invert else va[0] / vb[0])
        return out

    lines = ["\n### Echo throughput, latency and server CPU (ws-bench, medians of runs)\n",
             "| conns × in flight × size | server | messages/s | MB/s | p50 µs | p99 µs | server CPU µs/msg |",
             "|---|---|---|---|---|---|---|"]
    for cell in cells:
        for server in servers:
            rate = med(values(cell, server, "msgs_per_s"))
            if rate is None:
                continue
            mb = med(values(cell, server, "mb_per_s"))
            p50 = med(values(cell, server, "p50_us"))
            p99 = med(values(cell, server, "p99_us"))
            cpu = med(values(cell, server, "server_cpu_us_per_msg"))
            size = cell[2]
            size_text = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB" if size >= 1024 else f"{size} B"
            lines.append(f"| {cell[0]} × {cell[1]} × {size_text} | {server} | {rate:,.0f} | {mb:,.1f} | {p50:,.0f} | "
                         f"{p99:,.0f} | {cpu:,.2f} |" if cpu is not None else
                         f"| {cell[0]} × {cell[1]} × {size_text} | {server} | {rate:,.0f} | {mb:,.1f} | {p50:,.0f} | "
                         f"{p99:,.0f} | – |")
    lines += ["\n### Ratios inside each run (median; per run)\n",
              "| conns × in flight × size | msgs/s ws-echo ÷ nio-ws-echo | msgs/s ws-echo ÷ raw TCP | "
              "msgs/s nio-ws-echo ÷ raw TCP | CPU/msg nio-ws-echo ÷ ws-echo |",
              "|---|---|---|---|---|"]
    for cell in cells:
        cols = []
        for a, b, field, invert in (("ws-echo", "nio-ws-echo", "msgs_per_s", False),
                                    ("ws-echo", "nio-tcp-echo", "msgs_per_s", False),
                                    ("nio-ws-echo", "nio-tcp-echo", "msgs_per_s", False),
                                    ("nio-ws-echo", "ws-echo", "server_cpu_us_per_msg", False)):
            r = in_run_ratios(cell, a, b, field, invert)
            cols.append(fmt_ratio(r) if r else "–")
        lines.append(f"| {cell[0]} × {cell[1]} × {cell[2]} B | " + " | ".join(cols) + " |")
    text_rows = []
    for cell in cells:
        cols = []
        for a, b, field in (("ws-echo-text", "ws-echo", "server_cpu_us_per_msg"),
                            ("ws-echo-text", "ws-echo", "msgs_per_s"),
                            ("nio-ws-echo-text", "nio-ws-echo", "server_cpu_us_per_msg")):
            r = in_run_ratios(cell, a, b, field)
            cols.append(fmt_ratio(r) if r else "–")
        if any(c != "–" for c in cols):
            text_rows.append(f"| {cell[0]} × {cell[1]} × {cell[2]} B | " + " | ".join(cols) + " |")
    if text_rows:
        lines += ["\n### Text ÷ binary inside each run (median; per run)\n",
                  "| conns × in flight × size | CPU/msg ws-echo text ÷ binary | msgs/s ws-echo text ÷ binary | "
                  "CPU/msg nio-ws-echo text ÷ binary |", "|---|---|---|---|"] + text_rows
    lines += ["\n### Memory per idle connection (1,000 idle connections, server VmRSS delta)\n",
              "| server | bytes per connection (per run) |", "|---|---|"]
    for server in servers:
        v = [float(r["bytes_per_conn"]) for run in runs for r in run if r.get("label") == server and "idle" in r]
        if v:
            lines.append(f"| {server} | {statistics.median(v):,.0f} ({' / '.join(f'{x:,.0f}' for x in v)}) |")
    print("\n".join(lines))


def hubs(paths):
    """hubs.sh: one row per cell (label, scenario, protocol, servers, connections, in flight), medians over the
    runs; then ratios computed inside each run against the raw WebSocket echo and the in-process broadcast."""
    runs = [parse_compare(p) for p in paths]

    def key(row):
        return (row.get("label"), row.get("scenario", "echo"), row.get("protocol", "ws"), row.get("servers", "1"),
                row["conns"], row["inflight"])

    cells = []
    for run in runs:
        for row in run:
            if "conns" in row and key(row) not in cells:
                cells.append(key(row))

    def values(cell, field):
        return [float(r[field]) for run in runs for r in run
                if "conns" in r and key(r) == cell and r.get(field, "NA") != "NA"]

    def med(cell, field, fmt="{:,.0f}"):
        v = values(cell, field)
        return fmt.format(statistics.median(v)) if v else "–"

    lines = ["\n### Hub benchmarks (hubs.sh; medians of runs)\n",
             "| cell | scenario | protocol | servers | conns × in flight | messages/s | p50 µs | p99 µs | "
             "server CPU µs/msg | Redis CPU % | lost |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        label, scenario, protocol, servers, conns, inflight = cell
        lines.append(f"| {label} | {scenario} | {protocol} | {servers} | {conns} × {inflight} | "
                     f"{med(cell, 'msgs_per_s')} | {med(cell, 'p50_us')} | {med(cell, 'p99_us')} | "
                     f"{med(cell, 'server_cpu_us_per_msg', '{:,.2f}')} | {med(cell, 'redis_cpu_pct')} | "
                     f"{med(cell, 'lost')} |")

    def ratio_rows(title, pairs):
        out = [f"\n{title}\n", "| numerator | denominator | field | ratio (median; per run) |", "|---|---|---|---|"]
        for a, b, field in pairs:
            ratios = []
            for run in runs:
                va = [float(r[field]) for r in run if "conns" in r and key(r) == a and r.get(field, "NA") != "NA"]
                vb = [float(r[field]) for r in run if "conns" in r and key(r) == b and r.get(field, "NA") != "NA"]
                if va and vb and vb[0] > 0:
                    ratios.append(va[0] / vb[0])
            if ratios:
                out.append(f"| {' '.join(a[:3])} {a[4]}×{a[5]} | {' '.join(b[:3])} {b[4]}×{b[5]} | {field} | "
                           f"{fmt_ratio(ratios)} |")
        return out if len(out) > 3 else []

    pairs = []
    for cell in cells:
        label, scenario, protocol, servers, conns, inflight = cell
        if label == "hub-echo":
            raw = next((c for c in cells if c[0] == "ws-echo" and c[4] == conns and c[5] == inflight), None)
            if raw:
                pairs.append((cell, raw, "server_cpu_us_per_msg"))
        if label.startswith("cross-"):
            twin = label.replace("cross-", "hub-", 1)
            local = next((c for c in cells if c[0] == twin and c[2] == protocol and c[4] == conns), None)
            if local:
                for field in ("msgs_per_s", "server_cpu_us_per_msg", "p50_us", "p99_us"):
                    pairs.append((cell, local, field))
    lines += ratio_rows("### Ratios inside each run", pairs)
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("micro", "compare", "goals", "hubs", "echo"):
        print(__doc__)
        sys.exit(2)
    command, files = sys.argv[1], sys.argv[2:]
    if command == "micro":
        micro(files)
    elif command == "goals":
        sys.exit(goals(files))
    elif command == "hubs":
        hubs(files)
    elif command == "echo":
        echo(files)
    else:
        compare(files)
