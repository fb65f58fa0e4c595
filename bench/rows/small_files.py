"""Row group `small`: a 10 KiB upload, round trips and ms from socket open to `complete` (bench client,
sequential and pipelined), and the product CLI."""
import os

from harness.bench import HERE, SLOT
from harness.files import make_file
from harness.procs import KiB, last_json, log, run


def run_small(b):
    size = 10 * KiB
    runs = b.a.small_runs
    with b.ours_server("ours-small") as srv:
        tokfile = os.path.join(b.out, "tokens-small.txt")
        with open(tokfile, "w") as f:
            f.write("\n".join(b.tokens(2 * runs, 64 * KiB, size)))
        res = last_json(run([b.bpy, os.path.join(HERE, "wsclient.py"), "small", "--url", srv.url,
                             "--token-file", tokfile, "--slot", SLOT, "--size", str(size), "--runs", str(runs)],
                            what="wsclient small"))
        small = os.path.join(b.out, "small-10KiB.bin")
        make_file(small, size)
        tok = b.tokens(1, 64 * KiB, size)[0]
        cli, wall = b.cli_upload(srv.url, tok, small)
        res["cli"] = {"status": cli.get("status"), "seconds": cli.get("seconds"),
                      "wall_seconds_with_interpreter_start": round(wall, 3)}
    b.sections["small"] = res
    for mode in ("sequential", "pipelined"):
        m = res[mode]
        log(f"  {'small 10 KiB, ' + mode:34s} "
            + (f"{m['round_trips_after_open']} round trips after open (+1 handshake), "
               f"{m['ms_open_to_complete_p50']} ms from socket open (p50 of {m['runs']})"
               if not m["error"] else f"not supported: {m['error']}"))
    log(f"  {'small 10 KiB, product CLI':34s} {cli.get('seconds')} s in-client, {wall:.3f} s with interpreter start")
    if res["sequential"]["error"]:
        b.errors.append(f"small: {res['sequential']['error']}")
