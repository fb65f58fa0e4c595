"""Render a bench result (JSON from bench/run.py) as Markdown tables, for docs/benchmarks.md.

    python bench/report.py bench/out/results.json > /tmp/tables.md
"""
import json
import sys

MiB = 1 << 20
PEER_GROUPS = {"gunicorn", "twisted-wsgi", "tus", "djust"}


def x(v):
    return "" if v is None else f"{v:.2f}x"


def num(v):
    return "" if v is None else f"{v:.2f}"


def size(n):
    return f"{n >> 20} MiB" if n >= MiB else f"{n >> 10} KiB"


def main(path):
    r = json.load(open(path))
    m = r["meta"]
    out = []
    w = out.append
    w(f"Run {m['date']} at commit `{m['git']}`; file {size(m['file_bytes'])}; {m['nproc']} cores ({m['cpu']}); "
      f"{m['elapsed_seconds']:.0f} s in all{' (smoke)' if m['smoke'] else ''}.\n")
    w("### Throughput (one upload, same file, loopback)\n")
    w("| row | client | MiB/s | x limit | x fastest peer | server peak RSS growth | server CPU s/GiB | "
      "client CPU s/GiB | samples (MiB/s) |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for row in r["rows"]:
        if row.get("matrix") or row["group"] in ("wan", "chromium", "cluster"):
            continue
        if row.get("skipped"):
            w(f"| {row['row']} | | skipped: {row['skipped']} | | | | | | |")
            continue
        if row.get("expected_failure"):
            res = row.get("result") or {}
            what = f"close {res.get('code')}" if res.get("closed") else json.dumps(res)[:60]
            w(f"| {row['row']} | | refused ({what}) after {row['bytes_sent'] / MiB:.0f} MiB | | | | | | |")
            continue
        if not row.get("mib_s"):
            w(f"| {row['row']} | | FAILED: {str(row.get('error'))[:80]} | | | | | | |")
            continue
        rss = f"{row['rss_growth_mib']:.1f} MiB" if row.get("rss_growth_mib") is not None else ""
        samples = ", ".join(str(s) for s in row.get("samples_mib_s", [])) or "1"
        w(f"| {row['row']} | {row.get('client', '')} | {row['mib_s']:.0f} | {x(row.get('x_limit'))} | "
          f"{x(row.get('x_fastest_peer'))} | {rss} | {num(row.get('server_cpu_s_per_gib'))} | "
          f"{num(row.get('client_cpu_s_per_gib'))} | {samples} |")
    cells = [row for row in r["rows"] if row.get("matrix") and row.get("mib_s")]
    if cells:
        chunks = sorted({c["chunk"] for c in cells})
        windows = sorted({c["window"] for c in cells})
        w("\n### Ours: chunk size x window (product CLI, MiB/s, one sample per cell unless noted)\n")
        w("| window (chunks) | " + " | ".join(size(c) for c in chunks) + " |")
        w("|---:|" + "---:|" * len(chunks))
        by = {(c["chunk"], c["window"]): c for c in cells}
        for win in windows:
            vals = []
            for c in chunks:
                cell = by.get((c, win))
                vals.append(f"{cell['mib_s']:.0f}" if cell else "")
            w(f"| {win} | " + " | ".join(vals) + " |")
    browser = [row for row in r["rows"] if row["group"] == "chromium"]
    if browser:
        w("\n### Browser (headless Chromium, one run)\n")
        w("| row | MiB/s | browser CPU s/GiB | server CPU s/GiB | samples (MiB/s) |")
        w("|---|---:|---:|---:|---|")
        for row in browser:
            if not row.get("mib_s"):
                w(f"| {row['row']} | {'skipped: ' + row['skipped'] if row.get('skipped') else 'FAILED'} | | | |")
                continue
            samples = ", ".join(str(v) for v in row.get("samples_mib_s", [])) or "1"
            w(f"| {row['row']} | {row['mib_s']:.0f} | {num(row.get('browser_cpu_s_per_gib'))} | "
              f"{num(row.get('server_cpu_s_per_gib'))} | {samples} |")
    wan = r.get("wan")
    if wan and wan.get("links"):
        w(f"\n### Emulated links ({size(wan['bytes'])} per upload, MiB/s)\n")
        w("| link | proxy: raw TCP copy (x configured) | proxy: ping ms | ours (CLI, 64 KiB) | tus one PATCH | "
          "gunicorn multipart | djust | ours / tus |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for link in wan["links"]:
            px = link.get("proxy") or {}
            raw = f"{px['raw_tcp_mib_s']:.0f} ({px['raw_vs_configured']:.2f}x)" if px else "FAILED"
            cells = [f"{link[k + '_mib_s']:.1f}" if link.get(k + "_mib_s") else "" for k in
                     ("ours", "tus", "gunicorn", "djust")]
            w(f"| {link['name']} | {raw} | {px.get('ping_rtt_ms', '')} | " + " | ".join(cells) +
              f" | {num(link.get('ours_vs_tus'))} |")
    lag = r.get("lag")
    if lag:
        w("\n### Reactor lag\n")
        w(f"- During one {size(lag['large_bytes'])} upload (product CLI, {lag['large_mib_s']} MiB/s) plus "
          f"{lag['small_uploads']} uploads of {size(lag['small_bytes_each'])} ({lag['small_complete']} complete; "
          f"p50 {lag['small_seconds_p50']} s, max {lag['small_seconds_max']} s each): a {lag['interval_ms']} ms timer "
          f"on the server's reactor fired late by p50 **{lag['p50_ms']} ms**, p99 **{lag['p99_ms']} ms**, max "
          f"**{lag['max_ms']} ms** ({lag['samples']} samples; idle p50 {lag['idle_p50_ms']} ms).")
    mem, idle = r.get("memory_upload"), r.get("memory_idle")
    if mem or idle:
        w("\n### Memory (server, /proc)\n")
        if mem:
            w(f"- Upload of {size(mem['bytes'])}: peak RSS growth **{mem['peak_rss_growth_mib']} MiB** "
              f"(VmHWM after minus VmRSS before; from {mem['rss_before_mib']} MiB), at {mem['mib_s']} MiB/s.")
        if idle:
            w(f"- {idle['connections']} idle authenticated connections: **{idle['kib_per_connection']} KiB** per "
              f"connection ({idle['rss_before_mib']} -> {idle['rss_after_mib']} MiB).")
    c = r.get("concurrency")
    if c:
        w("\n### Concurrency\n")
        w(f"- {c['uploads']} simultaneous uploads of {size(c['bytes_each'])} from {c['client_processes']} client "
          f"processes, one connection and one session each: **{c['complete']}/{c['uploads']} complete, "
          f"{c['sha256_match']} SHA-256 match** ({c['stored_files']} files of that size stored).")
        w(f"- Aggregate **{c['aggregate_mib_s']} MiB/s** (first start to last completion {c['seconds']} s); "
          f"per upload p50 {c['upload_seconds_p50']} s, max {c['upload_seconds_max']} s.")
        w(f"- Ack latency (frame that completes an ack's range sent -> ack received): p50 **{c['ack_p50_ms']} ms**, "
          f"p99 **{c['ack_p99_ms']} ms** over {c['acks']} acks. Server peak RSS growth {c['rss_growth_mib']} MiB.")
    s = r.get("small")
    if s:
        w("\n### Small file (10 KiB)\n")
        w("| client | round trips after the WebSocket opens | + handshake | ms, socket open -> complete (p50) |")
        w("|---|---:|---:|---:|")
        for mode, label in (("pipelined", "bench client, auth + announce pipelined"),
                            ("sequential", "bench client, one message per round trip")):
            v = s[mode]
            if v["error"]:
                w(f"| {label} | not supported: {v['error'][:60]} | | |")
            else:
                w(f"| {label} | {', '.join(map(str, v['round_trips_after_open']))} | "
                  f"{', '.join(map(str, v['round_trips_with_handshake']))} | {v['ms_open_to_complete_p50']} |")
        cli = s.get("cli", {})
        if cli.get("seconds") is not None:
            w(f"| product CLI (in-client time; {cli['wall_seconds_with_interpreter_start'] * 1000:.0f} ms with "
              f"interpreter start) | | | {cli['seconds'] * 1000:.1f} |")
    cl = [row for row in r["rows"] if row["group"] == "cluster"]
    if cl:
        w("\n### Scale-out (scripts/cluster.sh: Redis, SeaweedFS S3, upload nodes, HAProxy; one machine)\n")
        w("| row | what | result |")
        w("|---|---|---:|")
        for row in cl:
            if row.get("skipped"):
                w(f"| {row['row']} | | skipped: {row['skipped']} |")
            elif row.get("ms_open_to_complete_p50") is not None:
                w(f"| {row['row']} | {row.get('note', '')} | {row['ms_open_to_complete_p50']} ms p50 |")
            elif row.get("mib_s"):
                w(f"| {row['row']} | {row.get('note', '')} | {row['mib_s']:.0f} MiB/s |")
            else:
                w(f"| {row['row']} | {row.get('note', '')} | FAILED: {str(row.get('error'))[:80]} |")
        sc = r.get("cluster")
        if sc:
            w(f"\n- Two nodes behind HAProxy / one node: **{sc.get('two_nodes_vs_one')}x** aggregate on S3, "
              f"**{sc.get('two_nodes_vs_one_dir')}x** on a shared directory "
              f"({sc['uploads']} x {size(sc['bytes_each'])}); S3 / shared directory, one upload: "
              f"**{sc.get('s3_vs_dir')}x**.")
            w(f"- Per 10 KiB upload: Redis (node vs standalone) **{sc['redis_added_ms']:+} ms**, HAProxy "
              f"**{sc['haproxy_added_ms']:+} ms** (p50 of each).")
    g = r.get("goals")
    if g:
        w("\n### Goals (ratios from this run)\n")
        w("| goal | measured | target | met |")
        w("|---|---:|---:|---|")
        names = {"ours_vs_fastest_peer": "ours / fastest peer", "ours_vs_limit": "ours / raw TCP->disk limit",
                 "rss_growth_mib_2x_file": "server RSS growth, MiB, 2x file upload",
                 "concurrency_aggregate_vs_single": "concurrent aggregate / single stream",
                 "small_round_trips": "10 KiB upload, round trips after open",
                 "concurrency_ack_p99_ms": "concurrent uploads, ack latency p99, ms",
                 "reactor_lag_p99_ms": "reactor lag p99, ms (large + small uploads)",
                 "browser_ours_vs_bare_websocket": "Chromium: ours / bare WebSocket loop"}
        for k, v in g.items():
            if k.startswith("wan_"):
                names[k] = f"link {k[4:].rsplit('_ours_vs_tus', 1)[0]}: ours / tus one PATCH"
            target = f"<= {v['goal_max']}" if "goal_max" in v else f">= {v['goal']}"
            w(f"| {names.get(k, k)} | {v['value']} | {target} | {'yes' if v['met'] else '**no**'} |")
    p = r.get("profile")
    if p:
        for end in ("server", "client"):
            q = p.get(end) or {}
            if not q.get("self"):
                continue
            w(f"\n### Profile: {end} (py-spy, {q['samples']} samples during one 64 KiB-chunk upload at "
              f"{p.get('upload_mib_s_while_profiled')} MiB/s while profiled)\n")
            w("| self time | function |")
            w("|---:|---|")
            for t in q["self"][:12]:
                w(f"| {t['pct']}% | `{t['function']}` |")
    v = m.get("versions", {})
    w("\nVersions: " + ", ".join(f"{k} {val}" for k, val in v.items() if k != "curl" and val) + ".")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
