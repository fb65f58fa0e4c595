"""What /proc says about a process tree (peak RSS growth, CPU seconds) and about the machine (load, busy CPUs)."""
import os
import time

MiB = 1 << 20


def proc_tree(pid):
    """pid and all its descendants (gunicorn's worker, uvicorn's reloader-less child, ...)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def proc_cpu(pid):
    """CPU seconds (utime + stime) of one process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu(pids):
    return sum(c for c in (proc_cpu(p) for p in pids) if c is not None)


class RSSProbe:
    """Peak RSS growth of a process tree: VmHWM reset through /proc/PID/clear_refs (5), then VmHWM - VmRSS."""

    def __init__(self, pid):
        self.pids = proc_tree(pid)
        self.before = {}
        for p in self.pids:
            try:
                with open(f"/proc/{p}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass
            self.before[p] = status_kib(p, "VmRSS")
        self.cpu0 = tree_cpu(self.pids)

    def cpu_s(self):
        """CPU seconds (user + system) the process tree used since the probe was made."""
        return round(tree_cpu(self.pids) - self.cpu0, 3)

    def growth_mib(self):
        g = 0
        for p in self.pids:
            try:
                g += status_kib(p, "VmHWM") - self.before[p]
            except OSError:  # the process is gone
                pass
        return round(g / MiB, 1)


def rss_mib(pid):
    return sum(status_kib(p, "VmRSS") for p in proc_tree(pid)) / MiB


def loadavg():
    """The 1-minute load average when a row ends: a busy machine (other jobs) shows here."""
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return None


def cpu_busy(interval=0.5):
    """Fraction of all CPUs busy over `interval` seconds (from /proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = snap()
    time.sleep(interval)
    t1, i1 = snap()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(threshold, max_wait):
    """Wait (up to max_wait s) until the machine is quiet (CPU busy < threshold) before a timed sample: other
    jobs on a shared 2-core machine would otherwise be measured too. Returns the last busy fraction seen."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy >= threshold and time.monotonic() < deadline:
        busy = cpu_busy(1.0)
    return round(busy, 2)


def warm_memory(gib):
    """Touch `gib` GiB of fresh anonymous memory once, in a child process that then exits.

    On a virtual machine the first write to a guest page the host has not backed yet is slow (the host faults it
    in), and a benchmark that writes gigabytes of new files pays it inside `write()` (the kernel's page-cache copy;
    docs/benchmarks.md, run 7). A server that has run for a while has its page cache over that memory already;
    touching it once here makes a short run see the same."""
    import subprocess
    import sys
    code = ("import mmap, sys\nn = int(sys.argv[1]) << 30\nm = mmap.mmap(-1, n)\n"
            "for off in range(0, n, 4096):\n    m[off] = 1\n")
    subprocess.run([sys.executable, "-c", code, str(int(gib))], check=True)
