#!/usr/bin/env python3
"""Compare ocwrap with tini, dumb-init and catatonit: start-up (wall time and
instructions), memory, idle wake-ups, teardown latency, zombie reaping,
`reap`/`ps` scan cost and `ps --check` with many workspaces.

    cargo build --release --locked && scripts/build-static.sh && python3 bench/compare.py

The main ocwrap column is the static build (scripts/build-static.sh), the
one users get; the default build (target/release/ocwrap) is an extra
column. It runs private copies of both (`--ocwrap PATH`, `--default-build
PATH` for others), installs tini (and tini-static), dumb-init, catatonit and
valgrind with apt-get if they are missing, and takes three to six minutes on
two cores.

One run prints a Markdown table (paste it into BENCHMARKS.md) and the issue's
targets as PASS/MISS lines. Python 3.11 standard library only; a small C
helper (process trees, orphan bursts, spawn timing) is compiled with gcc into
a temporary directory, because forking 5000 sleepers from a shell or from
Python takes longer than what we measure.

# Theory of operation

- Every process a case starts carries a unique environment variable
  `BENCH_MARK=ocbench-<run>-<case>`. "Gone" is decided by pidfds (a pidfd
  becomes readable when its process has exited), never by sleeping and
  looking; survivors are found by scanning `/proc/*/environ` for the mark.
- On a shared machine, wall times move with the load: every wall-time
  figure is taken in interleaved blocks (every wrapper in turn), and the
  ratios (to tini, to the floor) are medians of ratios within the same
  block, so load that comes and goes hits both sides of a ratio alike.
  Instruction counts (callgrind) do not move with the load at all.
- The benchmark makes itself a child subreaper, so that anything an anchor
  lets escape (dumb-init is not a subreaper) is re-parented to us and not to
  the machine's PID 1; we reap it.
- Cleanup, on any exit (normal, exception, SIGINT/SIGTERM/SIGHUP): every
  process we started is SIGKILLed through its pidfd, then `/proc` is scanned
  for this run's mark and each hit is killed by PID, after checking its mark
  again through a pidfd. Nothing is ever killed by name.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import ctypes
import hashlib
import http.server
import json
import os
import platform
import re
import resource
import secrets
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARK_VAR = "BENCH_MARK"
RUN_ID = secrets.token_hex(4)
RUN_PREFIX = f"ocbench-{RUN_ID}-"
PR_SET_CHILD_SUBREAPER = 36
SECTIONS = ("startup", "idle", "teardown", "burst", "scan", "check")
# ocwrap's `ps --check` waits this long for the health answers (src/commands/ps.rs).
PROBE_TIMEOUT_S = 2.0

HELPER_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void die(const char *what) { perror(what); exit(2); }

/* Write atomically: the benchmark polls for the file and must never see half of it. */
static void publish(const char *path, const char *text) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) die("fopen");
    fputs(text, f);
    if (fclose(f)) die("fclose");
    if (rename(tmp, path)) die("rename");
}

static char *pid_list(pid_t *pids, int n) {
    char *buf = malloc((size_t)n * 12 + 1), *p = buf;
    for (int i = 0; i < n; i++) p += sprintf(p, "%d\n", pids[i]);
    *p = 0;
    return buf;
}

/* tree group|setsid N READY SLEEP: start N `sleep 1000`, either as our own
 * children (in our process group) or as double-forked daemons in their own
 * sessions (re-parented to the nearest subreaper); write their PIDs to READY;
 * then wait to be killed. */
static int tree(char **argv) {
    int daemon = strcmp(argv[2], "setsid") == 0;
    int n = atoi(argv[3]);
    char *sleep_argv[] = {argv[5], "1000", NULL};
    pid_t *pids = calloc(n, sizeof *pids), *mids = calloc(n, sizeof *mids);
    int rp[2];
    if (daemon && pipe(rp)) die("pipe");
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0) die("fork");
        if (p == 0) {
            if (!daemon) { execv(argv[5], sleep_argv); _exit(127); }
            pid_t g = fork();
            if (g == 0) {
                close(rp[0]); close(rp[1]);
                setsid();
                execv(argv[5], sleep_argv);
                _exit(127);
            }
            if (write(rp[1], &g, sizeof g) != sizeof g) _exit(1);
            _exit(g < 0);
        }
        if (daemon) mids[i] = p; else pids[i] = p;
    }
    if (daemon) {
        /* The pipe holds 64 KiB, so N <= 16000 PIDs never block a writer. */
        for (int i = 0; i < n; i++) {
            if (read(rp[0], &pids[i], sizeof(pid_t)) != sizeof(pid_t)) die("read");
            waitpid(mids[i], NULL, 0);
        }
    }
    publish(argv[4], pid_list(pids, n));
    if (daemon) for (;;) pause();
    while (wait(NULL) >= 0 || errno == EINTR) {}
    for (;;) pause();
}

/* orphans N RESULT: fork N children; each forks a grandchild and exits, so
 * the grandchildren are re-parented to the nearest subreaper (the wrapper,
 * if it is one). They block on a pipe; closing it makes all N exit at once,
 * and we time until every one of them has been reaped (kill(pid, 0) gives
 * ESRCH only once the zombie is gone). */
static int orphans(char **argv) {
    int n = atoi(argv[2]);
    pid_t *kids = calloc(n, sizeof *kids), *gk = calloc(n, sizeof *gk);
    int go[2], rp[2];
    if (pipe(go) || pipe(rp)) die("pipe");
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0) die("fork");
        if (p == 0) {
            close(rp[0]);
            pid_t g = fork();
            if (g == 0) {
                char c;
                close(rp[1]); close(go[1]);
                while (read(go[0], &c, 1) < 0 && errno == EINTR) {}
                _exit(0);
            }
            if (write(rp[1], &g, sizeof g) != sizeof g) _exit(1);
            _exit(g < 0);
        }
        kids[i] = p;
    }
    close(rp[1]);
    close(go[0]);
    for (int i = 0; i < n; i++) {
        if (read(rp[0], &gk[i], sizeof(pid_t)) != sizeof(pid_t)) die("read");
        waitpid(kids[i], NULL, 0);
    }
    /* Are the grandchildren now the wrapper's? (field 4 of /proc/PID/stat) */
    int adopted = 0;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", gk[0]);
    FILE *f = fopen(path, "r");
    if (f && fgets(buf, sizeof buf, f)) {
        char *q = strrchr(buf, ')');
        int ppid = 0;
        if (q && sscanf(q + 2, "%*c %d", &ppid) == 1) adopted = ppid == getppid();
    }
    if (f) fclose(f);
    long long t0 = now_ns();
    close(go[1]);
    int left = n;
    long long deadline = t0 + 30000000000LL;
    if (adopted) {
        while (left > 0 && now_ns() < deadline) {
            int j = 0;
            for (int i = 0; i < left; i++)
                if (!(kill(gk[i], 0) < 0 && errno == ESRCH)) gk[j++] = gk[i];
            left = j;
            if (left) usleep(100);
        }
    }
    long long t1 = now_ns();
    char out[128];
    snprintf(out, sizeof out, "adopted=%d reap_ns=%lld left=%d\n", adopted, t1 - t0, adopted ? left : -1);
    publish(argv[3], out);
    return 0;
}

/* spawnbench RUNS OUT CMD...: posix_spawn CMD RUNS times (stdio on
 * /dev/null), wait for it, write each wall time in ns to OUT. */
static int spawnbench(char **argv) {
    int runs = atoi(argv[2]), failed = 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    long long *ns = calloc(runs, sizeof *ns);
    for (int r = 0; r < runs; r++) {
        pid_t pid;
        int st;
        long long t0 = now_ns();
        if (posix_spawn(&pid, argv[4], &fa, NULL, argv + 4, environ)) die("posix_spawn");
        while (waitpid(pid, &st, 0) < 0) if (errno != EINTR) die("waitpid");
        ns[r] = now_ns() - t0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
    }
    FILE *f = fopen(argv[3], "w");
    if (!f) die("fopen");
    for (int r = 0; r < runs; r++) fprintf(f, "%lld\n", ns[r]);
    fclose(f);
    printf("%d\n", failed);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "tree")) return tree(argv);
    if (argc == 4 && !strcmp(argv[1], "orphans")) return orphans(argv);
    if (argc >= 5 && !strcmp(argv[1], "spawnbench")) return spawnbench(argv);
    fprintf(stderr, "usage: helper tree|orphans|spawnbench ...\n");
    return 2;
}
"""


# ---------------------------------------------------------------- processes


class Registry:
    """Every process this run started, held by pidfd, for the final cleanup."""

    def __init__(self) -> None:
        self.pidfds: dict[int, int] = {}  # pid -> pidfd
        self.statuses: dict[int, int] = {}  # pid -> raw wait status

    def hold(self, pid: int) -> int | None:
        if pid in self.pidfds:
            return self.pidfds[pid]
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        self.pidfds[pid] = fd
        return fd

    def release(self, pid: int) -> None:
        fd = self.pidfds.pop(pid, None)
        if fd is not None:
            os.close(fd)

    def reap(self) -> list[int]:
        """Reap our children: wrappers, and whatever escaped to us as
        subreaper. Returns the PIDs reaped."""
        reaped = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return reaped
            if pid == 0:
                return reaped
            self.statuses[pid] = status
            reaped.append(pid)

    def kill_all(self) -> None:
        for pid in list(self.pidfds):
            try:
                signal.pidfd_send_signal(self.pidfds[pid], signal.SIGKILL)
            except (ProcessLookupError, OSError):
                pass
        wait_pidfds(list(self.pidfds.values()), 5.0)
        for pid in list(self.pidfds):
            self.release(pid)


REG = Registry()


def spawn(argv: list[str], mark: str, stderr_path: str | None = None) -> int:
    """Starts argv in its own process group with the mark in its environment."""
    env = {**os.environ, MARK_VAR: mark}
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, stderr_path or "/dev/null", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setpgroup=0)
    REG.hold(pid)
    return pid


def wait_pidfds(fds: list[int], timeout: float) -> list[int]:
    """Waits until every pidfd is readable (its process exited); returns those that are not."""
    pending = set(fds)
    if not pending:
        return []
    ep = select.epoll()
    for fd in pending:
        ep.register(fd, select.EPOLLIN)
    deadline = time.monotonic() + timeout
    while pending:
        left = max(0.0, deadline - time.monotonic())
        events = ep.poll(left)  # polls at least once, so timeout 0 is a check
        for fd, _ in events:
            ep.unregister(fd)
            pending.discard(fd)
        if not events and left == 0:
            break
    ep.close()
    return sorted(pending)


def read_environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return b"\0" + f.read()
    except OSError:
        return b""


def scan_marked(prefix: str) -> set[int]:
    """PIDs of live processes whose BENCH_MARK starts with prefix (zombies have no environ)."""
    needle = f"\0{MARK_VAR}={prefix}".encode()
    me = os.getpid()
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me and needle in read_environ(int(name)):
            found.add(int(name))
    return found


def kill_marked(prefix: str) -> int:
    """SIGKILLs every process carrying the mark prefix, by PID, re-checked through a pidfd."""
    needle = f"\0{MARK_VAR}={prefix}".encode()
    killed = []
    for pid in scan_marked(prefix):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        # The PID may have been reused between the scan and pidfd_open: the
        # pidfd now pins the process, so check the mark once more through it.
        if needle in read_environ(pid):
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed.append(fd)
            except ProcessLookupError:
                os.close(fd)
        else:
            os.close(fd)
    wait_pidfds(killed, 5.0)
    for fd in killed:
        os.close(fd)
    REG.reap()
    return len(killed)


def cleanup() -> None:
    REG.kill_all()
    kill_marked(RUN_PREFIX)
    REG.reap()


def proc_status(pid: int | str) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def ctxt_switches(pid: int) -> int:
    """Voluntary + involuntary context switches summed over every thread."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            st = proc_status(f"{pid}/task/{tid}")
        except OSError:
            continue
        total += int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
    return total


def cpu_times() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def busy_fraction(before: list[int], after: list[int]) -> float:
    delta = [b - a for a, b in zip(before, after)]
    idle = delta[3] + delta[4]  # idle + iowait
    return 1 - idle / max(1, sum(delta))


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def wait_until(cond, timeout: float, what: str, interval: float = 0.005):
    """Polls a condition the kernel cannot notify us about (a file appearing, an exec)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- wrappers


@dataclass
class Wrapper:
    name: str
    prefix: list[str]  # argv before CMD; empty for the baseline
    version: str = ""
    is_ocwrap: bool = False
    # Start-up and memory only (tini-static: its teardown is tini's).
    light: bool = False
    results: dict = field(default_factory=dict)

    def argv(self, cmd: list[str]) -> list[str]:
        return self.prefix + cmd


# Program -> Debian package. catatonit is optional; valgrind counts
# instructions (without it those rows say n/a).
PACKAGES = {"tini": "tini", "tini-static": "tini", "dumb-init": "dumb-init",
            "catatonit": "catatonit", "valgrind": "valgrind"}


def ensure_anchors(install: bool) -> None:
    missing = sorted({pkg for prog, pkg in PACKAGES.items() if not shutil.which(prog)})
    if not missing or not install:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"note: {', '.join(missing)} missing and cannot apt-get install", file=sys.stderr)
        return
    print(f"installing {' '.join(missing)} with apt-get ...", file=sys.stderr)
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, **quiet)
        for pkg in missing:  # some may not exist (catatonit): one by one
            subprocess.run(["apt-get", "install", "-y", "-qq", pkg], env=env, **quiet)


def version_of(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except OSError:
        return "?"
    return (p.stdout.strip() or p.stderr.strip()).splitlines()[0] if (p.stdout or p.stderr) else "?"


def wrappers(builds: list[tuple[str, str]], grace: str, extra: list[str]) -> list[Wrapper]:
    """The ocwrap builds (label, binary) first, then the anchors found on PATH."""
    ws = []
    for label, path in builds:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
        version = f"{version_of([path, '--version'])} ({os.path.getsize(path)} bytes, sha256 {digest})"
        ws.append(Wrapper(label, [path, "-q", "--grace", grace, *extra, "--"], version, is_ocwrap=True))
    if shutil.which("tini"):
        ws.append(Wrapper("tini -s -g", [shutil.which("tini"), "-s", "-g", "--"], version_of(["tini", "--version"])))
    if shutil.which("tini-static"):
        ws.append(Wrapper("tini-static -s -g", [shutil.which("tini-static"), "-s", "-g", "--"],
                          version_of(["tini-static", "--version"]), light=True))
    if shutil.which("dumb-init"):
        ws.append(Wrapper("dumb-init", [shutil.which("dumb-init"), "--"], version_of(["dumb-init", "-V"])))
    if shutil.which("catatonit"):
        ws.append(Wrapper("catatonit -g", [shutil.which("catatonit"), "-g", "--"], version_of(["catatonit", "-V"])))
    return ws


# ---------------------------------------------------------------- measurements


class TreeNotReady(Exception):
    pass


class Bench:
    def __init__(self, args, tmp: Path, helper: str) -> None:
        self.args = args
        self.tmp = tmp
        self.helper = helper
        self.sleep = shutil.which("sleep")
        self.true = shutil.which("true")
        self.seq = 0
        self.background_busy = 0.0
        self.procs_seen: list[int] = []  # processes on the machine at each SIGTERM

    def mark(self, what: str) -> str:
        self.seq += 1
        return f"{RUN_PREFIX}{self.seq}-{what.replace(' ', '')}"

    def spawnbench(self, argv: list[str], runs: int, env: dict | None = None) -> tuple[list[float], int]:
        out = self.tmp / f"spawn-{self.seq}.txt"
        self.seq += 1
        p = subprocess.run([self.helper, "spawnbench", str(runs), str(out), *argv],
                           capture_output=True, text=True, env={**os.environ, **(env or {})})
        if p.returncode != 0:
            raise RuntimeError(f"spawnbench failed: {p.stderr.strip()}")
        samples = [int(x) / 1e6 for x in out.read_text().split()]
        return samples, int(p.stdout.strip() or 0)

    # -- start-up

    def startup(self, ws: list[Wrapper], base: Wrapper) -> None:
        # Ten runs at a time, interleaved, so that load from elsewhere on
        # the machine hits every wrapper alike; the ratio to tini is the
        # median of the ratios of block medians taken side by side.
        per = 10
        rounds = max(1, self.args.runs // per)
        every = [base, *ws]
        samples: dict[str, list[float]] = {w.name: [] for w in every}
        blocks: dict[str, list[float]] = {w.name: [] for w in every}
        failed: dict[str, int] = {w.name: 0 for w in every}
        for _ in range(rounds):
            for w in every:
                s, f = self.spawnbench(w.argv([self.true]), per)
                samples[w.name] += s
                blocks[w.name].append(statistics.median(s))
                failed[w.name] += f
        tini = next((w for w in ws if w.name == "tini -s -g"), None)
        for w in every:
            w.results["startup_ms"] = statistics.median(samples[w.name])
            w.results["startup_failed"] = failed[w.name]
            if tini:
                w.results["startup_ratio"] = statistics.median(
                    a / b for a, b in zip(blocks[w.name], blocks[tini.name]))
        for w in ws:
            if w.is_ocwrap:
                s, _ = self.spawnbench([w.prefix[0], "--version"], self.args.runs)
                w.results["version_ms"] = statistics.median(s)
        for w in every:
            w.results["startup_instructions"] = self.instructions(w.argv([self.true]))

    def instructions(self, argv: list[str]) -> int | None:
        """Instructions the process executes (callgrind), its children
        excluded (valgrind does not follow the exec): the same on a busy
        machine as on an idle one."""
        if not shutil.which("valgrind"):
            return None
        p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
                           capture_output=True, text=True, timeout=300)
        first = re.search(r"^==(\d+)==", p.stderr, re.M)
        counts = dict(re.findall(r"^==(\d+)== Collected : (\d+)", p.stderr, re.M))
        if p.returncode != 0 or not first or first.group(1) not in counts:
            return None
        return int(counts[first.group(1)])

    # -- memory and idle wake-ups, all wrappers side by side in one window

    def idle(self, ws: list[Wrapper]) -> None:
        running = []
        for w in ws:
            mark = self.mark(f"idle-{w.name}")
            pid = spawn(w.argv([self.sleep, "1000"]), mark)
            running.append((w, pid, mark))
        for w, pid, mark in running:
            wait_until(lambda: any(comm(p) == "sleep" for p in scan_marked(mark) - {pid}), 10, f"{w.name}'s sleep")
        time.sleep(0.2)  # let each wrapper get back to its wait after the child's exec
        before = {pid: ctxt_switches(pid) for _, pid, _ in running}
        cpu_before = cpu_times()
        time.sleep(self.args.idle)
        # Nothing of ours runs in this window: what keeps the CPUs busy is
        # the rest of the machine, the noise every other row suffers too.
        self.background_busy = busy_fraction(cpu_before, cpu_times())
        for w, pid, _ in running:
            st = proc_status(pid)
            w.results["hwm_kb"] = int(st["VmHWM"].split()[0])
            w.results["rss_kb"] = int(st["VmRSS"].split()[0])
            w.results["rss_anon_kb"] = int(st["RssAnon"].split()[0])
            w.results["rss_file_kb"] = int(st["RssFile"].split()[0])
            w.results["wakeups"] = ctxt_switches(pid) - before[pid]
        for w, pid, mark in running:
            signal.pidfd_send_signal(REG.pidfds[pid], signal.SIGTERM)
        wait_pidfds([REG.pidfds[pid] for _, pid, _ in running], 20)
        for w, pid, mark in running:
            REG.release(pid)
            kill_marked(mark)
        REG.reap()

    # -- teardown of a tree of N sleepers

    def teardown(self, w: Wrapper | None, mode: str, n: int) -> dict:
        name = w.name if w else "direct"
        mark = self.mark(f"td-{name}-{mode}-{n}")
        ready = self.tmp / f"ready-{mark}"
        cmd = [self.helper, "tree", mode, str(n), str(ready), self.sleep]
        log = self.tmp / f"stderr-{mark}"
        wpid = spawn(w.argv(cmd) if w else cmd, mark, str(log))
        wfd = REG.pidfds[wpid]

        def is_ready():
            if ready.exists():
                return True
            if wait_pidfds([wfd], 0) == []:
                raise RuntimeError(f"{name} exited while starting the tree: {log.read_text()[-500:]}")
            return False

        wait_until(is_ready, 120, f"{name}: {n} sleepers")
        sleepers = [int(x) for x in ready.read_text().split()]
        # Started means exec'd: comm is "sleep" for every one of them.
        wait_until(lambda: all(comm(p) == "sleep" for p in sleepers), 30, "sleepers to exec")
        members = scan_marked(mark) - {wpid}
        missing = set(sleepers) - members
        if missing:
            info = []
            for p in sorted(missing)[:5]:
                try:
                    st = proc_status(p)
                    info.append(f"{p}: {st.get('Name')} ppid {st.get('PPid')} state {st.get('State')} "
                                f"env {read_environ(p)[:80]!r}")
                except OSError as e:
                    info.append(f"{p}: {e}")
            REG.release(wpid)
            kill_marked(mark)
            raise TreeNotReady(f"{len(missing)} of {n} sleepers not found by mark: {info}")
        fds = {}
        for pid in members:
            fd = REG.hold(pid)
            if fd is not None:
                fds[fd] = pid
        ep = select.epoll()
        for fd in [wfd, *fds]:
            ep.register(fd, select.EPOLLIN)
        pending = set(fds)
        procs = count_processes()
        self.procs_seen.append(procs)

        t0 = time.perf_counter()
        if w:
            signal.pidfd_send_signal(wfd, signal.SIGTERM)
        else:
            # The floor: the benchmark itself signals the group, and each
            # daemon by pidfd (what a supervisor has to do at least).
            os.killpg(wpid, signal.SIGTERM)
            if mode == "setsid":
                for fd in fds:
                    try:
                        signal.pidfd_send_signal(fd, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        wrapper_exit = last_gone = None
        hard = t0 + self.args.teardown_timeout
        while True:
            now = time.perf_counter()
            # Once the wrapper is gone, the rest of the tree gets `settle`
            # seconds after the last death: a tree that is still dying (an
            # anchor that exits with its CMD while the group it signalled is
            # ending) keeps going; survivors make no progress.
            quiet_since = max(wrapper_exit or 0.0, last_gone or 0.0)
            end = hard if wrapper_exit is None else min(hard, quiet_since + self.args.settle)
            if (wrapper_exit is not None and not pending) or now >= end:
                break
            for fd, _ in ep.poll(end - now):
                now = time.perf_counter()
                ep.unregister(fd)
                if fd == wfd:
                    wrapper_exit = now
                else:
                    pending.discard(fd)
                    last_gone = now
        ep.close()
        # An exited process is gone only once it is reaped: a wrapper that
        # is not a subreaper (dumb-init outside PID 1) leaves the tree's
        # zombies to us, the subreaper above it, and reaping them is part of
        # the teardown it did not do. So is the floor's. Subreapers reaped
        # theirs before they exited.
        reaped_here = sum(1 for pid in REG.reap() if pid != wpid)
        reaped_at = time.perf_counter()
        # What is still marked now survived: kill it by PID and count it.
        for fd in list(fds):
            REG.release(fds[fd])
        REG.release(wpid)
        if wrapper_exit is None:
            survivors = kill_marked(mark) - 1
            return {"ms": None, "left": survivors, "procs": procs, "note": "wrapper did not exit"}
        survivors = max(kill_marked(mark), len(pending))
        if survivors:
            return {"ms": (wrapper_exit - t0) * 1e3, "left": survivors, "procs": procs}
        exited = max(wrapper_exit, last_gone or wrapper_exit)
        gone = reaped_at if reaped_here else exited
        return {"ms": (gone - t0) * 1e3, "exited_ms": (exited - t0) * 1e3, "reaped_by_bench": reaped_here,
                "left": 0, "procs": procs}

    def teardown_retrying(self, w: Wrapper | None, mode: str, n: int) -> dict:
        for attempt in range(3):
            try:
                return self.teardown(w, mode, n)
            except TreeNotReady as e:
                # Seen once on a machine shared with other test suites; the
                # case's processes are already cleaned up, so start it afresh.
                print(f"  warning: {e}; retrying", file=sys.stderr)
        raise RuntimeError(f"teardown {mode} N={n}: the tree never started completely")

    def teardowns(self, ws: list[Wrapper]) -> dict:
        out: dict = {}
        for mode in ("group", "setsid"):
            for n in self.args.sizes:
                reps = self.args.reps_large if n >= 5000 else self.args.reps
                runs: dict[str, list[dict]] = {}
                for _ in range(reps):  # interleaved, like the start-up runs
                    for w in [None, *[w for w in ws if not w.light]]:
                        runs.setdefault(w.name if w else "direct", []).append(self.teardown_retrying(w, mode, n))
                floor = runs["direct"]
                for name, rs in runs.items():
                    ok = [r["ms"] for r in rs if r["ms"] is not None]
                    # Each repetition against the floor of the same round.
                    ratios = [r["ms"] / f["ms"] for r, f in zip(rs, floor)
                              if r["ms"] is not None and f["ms"]]
                    out[(name, mode, n)] = {
                        "ms": statistics.median(ok) if ok else None,
                        "left": max(r["left"] for r in rs),
                        "floor_ratio": statistics.median(ratios) if ratios else None,
                        "runs": [r["ms"] for r in rs],
                        "exited_runs": [r.get("exited_ms") for r in rs],
                        "reaped_by_bench": max(r.get("reaped_by_bench", 0) for r in rs),
                        "procs": [r["procs"] for r in rs],
                    }
                    print(f"  teardown {mode:6} N={n:<5} {name:13} {fmt_td(out[(name, mode, n)])}", file=sys.stderr)
        return out

    # -- reaping a burst of orphaned zombies

    def reap_burst(self, w: Wrapper, n: int) -> dict:
        mark = self.mark(f"reap-{w.name}-{n}")
        result = self.tmp / f"reap-{mark}"
        pid = spawn(w.argv([self.helper, "orphans", str(n), str(result)]), mark)
        left = wait_pidfds([REG.pidfds[pid]], 90)
        REG.release(pid)
        kill_marked(mark)
        REG.reap()
        if left:
            return {"ms": None, "note": "timed out"}
        if not result.exists():
            return {"ms": None, "note": f"no result, {describe_status(REG.statuses.get(pid))}"}
        kv = dict(x.split("=") for x in result.read_text().split())
        if kv["adopted"] != "1":
            return {"ms": None, "note": "not a subreaper"}
        if int(kv["left"]) > 0:
            return {"ms": None, "note": f"{kv['left']} never reaped"}
        return {"ms": int(kv["reap_ns"]) / 1e6}

    # -- ocwrap reap --dry-run / ps with many unrelated processes

    def scans(self, builds: list[Wrapper], n: int) -> dict:
        """Times `reap --dry-run` and `ps` of each build, sharing one set of
        N unrelated sleepers and one registered workspace."""
        mark = self.mark(f"scan-{n}")
        ready = self.tmp / f"ready-{mark}"
        pid = spawn([self.helper, "tree", "group", str(n), str(ready), self.sleep], mark)
        wait_until(ready.exists, 60, f"{n} unrelated sleepers")
        procs = count_processes()
        state = self.tmp / "state"
        state.mkdir(exist_ok=True)
        env = {"OCWRAP_STATE_DIR": str(state), MARK_VAR: mark}
        ocwrap = builds[0].prefix[0]
        out = {"processes": procs, "workspaces": self.fake_workspace(ocwrap, env)}
        for w in builds:
            for key, sub in (("reap_dry_run", ["reap", "--dry-run"]), ("ps", ["ps"])):
                argv = [w.prefix[0], *sub]
                # `--help` works as soon as clap knows the subcommand; only a
                # real run tells whether it is implemented.
                probe = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=30)
                if probe.returncode != 0:
                    how = f"exit {probe.returncode}" if probe.returncode > 0 else f"killed by signal {-probe.returncode}"
                    msg = (probe.stderr.strip().splitlines() or [""])[-1]
                    w.results[key] = {"ms": None, "note": f"n/a ({how}{': ' + msg if msg else ''})"}
                    continue
                samples, failed = self.spawnbench(argv, self.args.scan_runs, env)
                w.results[key] = {"ms": statistics.median(samples), "max_ms": max(samples), "failed": failed}
        if out["workspaces"]:
            subprocess.run([ocwrap, "-q", "stop", "--all"], env={**os.environ, **env},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        signal.pidfd_send_signal(REG.pidfds[pid], signal.SIGKILL)
        REG.release(pid)
        kill_marked(mark)
        REG.reap()
        return out

    def fake_workspace(self, ocwrap: str, env: dict) -> int:
        """Registers one workspace (a fake `opencode serve` that prints the
        listening line and sleeps), so that `ps` has a record to inspect and
        has to scan /proc. Returns how many workspaces exist (0 if spawn fails)."""
        fake = self.tmp / "opencode"
        fake.write_text('#!/bin/sh\necho "opencode server listening on http://127.0.0.1:9"\nexec sleep 1000\n')
        fake.chmod(0o755)
        folder = self.tmp / "workspace"
        folder.mkdir(exist_ok=True)
        # Output to a file, not a pipe: the detached supervisor would hold a
        # pipe open and run() would wait for it.
        with open(self.tmp / "spawn.log", "w") as log:
            try:
                p = subprocess.run([ocwrap, "-q", "spawn", "--detach", "--opencode", str(fake), str(folder)],
                                   env={**os.environ, **env}, stdout=log, stderr=log, timeout=30)
            except subprocess.TimeoutExpired:
                return 0
        return 1 if p.returncode == 0 else 0

    # -- ocwrap ps --check with many workspaces, some unresponsive

    def ps_check(self, builds: list[Wrapper], n: int, silent: int) -> dict:
        """Times `ps --check` of each build over N detached workspaces (fake
        `opencode serve`s started with `ocwrap spawn --detach`): N - SILENT
        of them answer the health check, SILENT accept the connection and
        never answer (sockets the benchmark holds open and never reads)."""
        mark = self.mark(f"check-{n}")
        state = self.tmp / "check-state"
        state.mkdir(mode=0o700, exist_ok=True)
        env = {**os.environ, "OCWRAP_STATE_DIR": str(state), MARK_VAR: mark}
        listeners = []
        for _ in range(silent):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)  # every ps run leaves one connection queued
            listeners.append(sock)
        server = HealthServer(("127.0.0.1", 0), Health)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        fake = self.tmp / "opencode-check"
        fake.write_text('#!/bin/sh\necho "opencode server listening on http://127.0.0.1:$BENCH_PORT"\n'
                        'exec sleep 1000\n')
        fake.chmod(0o755)
        ocwrap = builds[0].prefix[0]
        out = {"workspaces": 0, "unresponsive": silent}
        try:
            with open(self.tmp / "check-spawn.log", "w") as log:
                for i in range(n):
                    port = listeners[i].getsockname()[1] if i < silent else server.server_address[1]
                    folder = self.tmp / "check" / f"w{i}"
                    folder.mkdir(parents=True, exist_ok=True)
                    p = subprocess.run([ocwrap, "-q", "spawn", "--detach", "--opencode", str(fake), str(folder)],
                                       env={**env, "BENCH_PORT": str(port)}, stdout=log, stderr=log, timeout=60)
                    out["workspaces"] += p.returncode == 0
            for w in builds:
                probe = subprocess.run([w.prefix[0], "ps", "--check", "--json"], env=env,
                                       capture_output=True, text=True, timeout=300)
                if probe.returncode != 0:
                    msg = (probe.stderr.strip().splitlines() or [""])[-1]
                    w.results["ps_check"] = {"ms": None, "note": f"n/a (exit {probe.returncode}: {msg})"}
                    continue
                health = collections.Counter(r.get("health") for r in json.loads(probe.stdout))
                samples, failed = self.spawnbench([w.prefix[0], "ps", "--check"], self.args.check_runs, env)
                w.results["ps_check"] = {"ms": statistics.median(samples), "runs": samples, "failed": failed,
                                         "healthy": health["healthy"], "unresponsive": health["unresponsive"]}
        finally:
            subprocess.run([ocwrap, "-q", "stop", "--all"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=600)
            kill_marked(mark)
            REG.reap()
            server.shutdown()
            server.server_close()
            for sock in listeners:
                sock.close()
        return out


class HealthServer(http.server.ThreadingHTTPServer):
    # Every healthy workspace is asked at once: socketserver's default
    # backlog of 5 would drop the rest of the connections (and the probes
    # would wait for the SYN to be sent again).
    request_queue_size = 256
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # ocwrap hangs up once it has the status line: not an error


class Health(http.server.BaseHTTPRequestHandler):
    """opencode's health endpoint, as `ps --check` asks it."""

    def do_GET(self) -> None:
        ok = self.path == "/global/health"
        body = b'{"healthy":true}' if ok else b""
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass



# ---------------------------------------------------------------- report


def describe_status(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{ms / 1000:.2f} s"


def fmt_td(r: dict) -> str:
    if r["ms"] is None:
        return "n/a"
    if r["left"]:
        return f"{fmt_ms(r['ms'])}, {r['left']} left"
    return fmt_ms(r["ms"])


def host_triple() -> str:
    try:
        out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    m = re.search(r"^host: (\S+)", out, re.M)
    return m.group(1) if m else f"{platform.machine()}-unknown-linux-gnu"


def count_processes() -> int:
    return sum(1 for x in os.listdir("/proc") if x.isdigit())


def git_head() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        return "?"


# Taken when the run starts: other people commit to the checkout meanwhile.
PROCS_AT_START = count_processes()
HEAD_AT_START = git_head()
STARTED_AT = time.strftime("%Y-%m-%d %H:%M %Z")


def machine(ws: list[Wrapper], bench: Bench) -> list[str]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    lines = [
        f"- CPU: {os.cpu_count()} × {model} (nproc {len(os.sched_getaffinity(0))}), {mem} MiB RAM",
        f"- kernel: {platform.release()} ({platform.machine()}), Python {platform.python_version()}",
        f"- started {STARTED_AT}, checkout at {HEAD_AT_START} (the binaries are identified by their hash below)",
        f"- processes on the machine when the run started: {PROCS_AT_START} "
        "(what a full scan of /proc costs grows with it)",
    ]
    if "idle" in bench.args.only:
        lines.append(f"- background CPU use (other users of the machine) during the {bench.args.idle:g} s idle "
                     f"window: {bench.background_busy:.0%} of {os.cpu_count()} CPUs")
    for w in ws:
        lines.append(f"- {w.name}: {w.version}")
    return lines


def fmt_count(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"


def fmt_mb(kb: int) -> str:
    return f"{kb / 1024:.2f} MB"


def tini_of(ws: list[Wrapper]) -> Wrapper | None:
    """The anchor of the start-up targets: Debian's dynamic tini."""
    return next((w for w in ws if w.name == "tini -s -g"), None)


def report(ws, base, td, reaps, scans, checks, args, bench) -> tuple[str, list[str]]:
    cols = [base, *ws]
    head = "| | " + " | ".join("bare /bin/true" if c is base else c.name for c in cols) + " |"
    rows = [head, "|---|" + "---:|" * len(cols)]

    def row(label, cells):
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    tini = tini_of(ws)
    notes = ["bare /bin/true column: start-up without a wrapper; for teardown, the benchmark itself "
             "signals the process group (and each daemon by pidfd): the floor."]
    if "startup" in args.only:
        row(f"start-up `W -- /bin/true` (median of {args.runs})", [fmt_ms(c.results.get("startup_ms")) for c in cols])
        if tini:
            row("start-up, ratio to tini (same blocks)", [f"{c.results['startup_ratio']:.2f}×" for c in cols])
        row("start-up instructions (callgrind, the wrapper process)",
            [fmt_count(c.results.get("startup_instructions")) for c in cols])
        t_ins = tini.results.get("startup_instructions") if tini else None
        if t_ins:
            row("start-up instructions, ratio to tini",
                [f"{c.results['startup_instructions'] / t_ins:.2f}×" if c.results.get("startup_instructions")
                 else "n/a" for c in cols])
        row("`ocwrap --version` (binary load and argument parsing only)",
            [fmt_ms(c.results["version_ms"]) if c.is_ocwrap else "—" for c in cols])
        notes.append("start-up instructions: what the wrapper process itself executes from its first "
                     "instruction to its exit, CMD's exec excluded (valgrind does not follow it); machine "
                     "load does not change them.")
    if "idle" in args.only:
        row("peak RSS (VmHWM) supervising `sleep`", ["—"] + [fmt_mb(w.results["hwm_kb"]) for w in ws])
        row("RssAnon supervising `sleep`", ["—"] + [fmt_mb(w.results["rss_anon_kb"]) for w in ws])
        row("RssFile supervising `sleep`", ["—"] + [fmt_mb(w.results["rss_file_kb"]) for w in ws])
        row(f"context switches in {args.idle:g} s idle", ["—"] + [str(w.results["wakeups"]) for w in ws])
    if "teardown" in args.only:
        for mode in ("group", "setsid"):
            for n in args.sizes:
                label = f"teardown, {n} sleepers {'in the group' if mode == 'group' else 'as setsid daemons'}"
                cells = []
                for c in cols:
                    r = None if c is not base and c.light else td[("direct" if c is base else c.name, mode, n)]
                    if r is None:
                        cells.append("—")
                    elif c is base or r["floor_ratio"] is None or r["left"]:
                        cells.append(fmt_td(r))
                    else:
                        cells.append(f"{fmt_td(r)} ({r['floor_ratio']:.2f}× floor)")
                row(label, cells)
        notes.append("teardown: SIGTERM to the wrapper until the wrapper has exited and every marked process "
                     "is gone: exited and reaped (the zombies a wrapper that is not a subreaper leaves behind "
                     "are reaped by the benchmark, and that time counts); \"K left\": the wrapper exited but K "
                     "processes of the tree survived (time is the wrapper's exit; the survivors were then killed "
                     "by PID). \"× floor\": the median of each repetition divided by the floor measured in the "
                     "same round.")
        left_to_us: dict[str, tuple[int, int]] = {}
        for (name, _, n), r in td.items():
            k = r.get("reaped_by_bench", 0)
            if k and not r["left"] and k / n > left_to_us.get(name, (0, 1))[0] / left_to_us.get(name, (0, 1))[1]:
                left_to_us[name] = (k, n)
        if left_to_us:
            notes.append("zombies of the tree that the wrapper left to the benchmark to reap (the time counts): "
                         + ", ".join(f"{'the floor' if name == 'direct' else name} up to {k} of {n}"
                                     for name, (k, n) in sorted(left_to_us.items())) + ".")
        seen = bench.procs_seen
        notes.append(f"processes on the machine at the teardowns' SIGTERM, tree included: {min(seen)} to "
                     f"{max(seen)} (ocwrap's teardown sweep scans /proc; the anchors do not).")
    if "burst" in args.only:
        for n in args.sizes:
            cells = ["—"]
            for w in ws:
                r = reaps.get((w.name, n))
                cells.append("—" if r is None else fmt_ms(r["ms"]) if r["ms"] is not None else f"n/a ({r['note']})")
            row(f"reap a burst of {n} orphaned zombies", cells)
    if "scan" in args.only:
        def cell(c, key):
            if not c.is_ocwrap:
                return "—"
            r = c.results[key]
            return fmt_ms(r["ms"]) if r["ms"] is not None else r["note"]

        for key, label in (("reap_dry_run", "`ocwrap reap --dry-run`"), ("ps", "`ocwrap ps`")):
            row(f"{label}, {scans['processes']} processes, {scans['workspaces']} workspace(s) "
                f"(median of {args.scan_runs})", [cell(c, key) for c in cols])
    if "check" in args.only:
        def check_cell(c):
            if not c.is_ocwrap:
                return "—"
            r = c.results["ps_check"]
            if r["ms"] is None:
                return r["note"]
            return f"{fmt_ms(r['ms'])} ({r['healthy']} healthy, {r['unresponsive']} unresponsive)"

        row(f"`ocwrap ps --check`, {checks['workspaces']} workspaces, {checks['unresponsive']} never answer "
            f"(median of {args.check_runs})", [check_cell(c) for c in cols])
        notes.append(f"`ps --check`: the unresponsive workspaces' servers accept the connection and never "
                     f"answer; ocwrap's probe timeout is {PROBE_TIMEOUT_S:g} s.")
    return "\n".join(rows), notes


def targets(ws, td, scans, args) -> list[str]:
    builds = [w for w in ws if w.is_ocwrap]
    out = []
    for oc in builds:
        if len(builds) > 1:
            out.append(f"{oc.name}:")
        out += build_targets(oc, ws, td, scans, args)
    return out


def build_targets(oc, ws, td, scans, args) -> list[str]:
    anchors = [w for w in ws if not w.is_ocwrap and not w.light]
    out = []

    def line(ok, text):
        out.append(f"- {'PASS' if ok else 'MISS'}: {text}")

    tini = tini_of(ws)
    if tini and "startup" in args.only:
        r = oc.results["startup_ratio"]
        line(r <= 1.1, f"start-up ≤ 1.1× tini: {fmt_ms(oc.results['startup_ms'])} vs "
                       f"{fmt_ms(tini.results['startup_ms'])}, {r:.2f}× within the same blocks")
        mine, theirs = oc.results.get("startup_instructions"), tini.results.get("startup_instructions")
        if mine and theirs:
            line(mine <= 1.5 * theirs, f"start-up instructions ≤ 1.5× tini's: {fmt_count(mine)} vs "
                                       f"{fmt_count(theirs)} = {mine / theirs:.2f}×")
    if "idle" in args.only:
        line(oc.results["wakeups"] == 0, f"idle wake-ups 0 in {args.idle:g} s: {oc.results['wakeups']}")
        mb = oc.results["hwm_kb"] / 1024
        line(mb <= 1.5, f"peak RSS ≤ 1.5 MB: {mb:.2f} MB = {mb / 1.5:.2f}× the target "
                        f"(RssAnon {fmt_mb(oc.results['rss_anon_kb'])}, RssFile {fmt_mb(oc.results['rss_file_kb'])})")
    if "teardown" in args.only:
        teardown_targets(oc, anchors, td, args, line)
    if "scan" in args.only:
        scan_targets(oc, scans, out, line)
    if "check" in args.only:
        r = oc.results["ps_check"]
        if r["ms"] is None:
            out.append(f"- n/a: ps --check within one probe timeout: {r['note']}")
        else:
            # One timeout plus what `ps` costs anyway (start-up, records, /proc).
            limit = PROBE_TIMEOUT_S * 1e3 + 500
            line(r["ms"] <= limit, f"ps --check with many unresponsive workspaces within one probe timeout "
                                   f"({PROBE_TIMEOUT_S:g} s, + 0.5 s): {fmt_ms(r['ms'])}")
    return out


def teardown_targets(oc, anchors, td, args, line) -> None:
    # The targets are for N = 1000 and 5000: a small tree's
    # teardown is a few milliseconds, mostly fixed costs and noise.
    for mode in ("group", "setsid"):
        for n in [n for n in args.sizes if n >= 1000]:
            mine = td[(oc.name, mode, n)]
            if mine["ms"] is None:
                continue
            # Anchors that leave processes behind did not do the job.
            clean = [td[(a.name, mode, n)]["ms"] for a in anchors
                     if td[(a.name, mode, n)]["ms"] is not None and not td[(a.name, mode, n)]["left"]]
            left = f", {mine['left']} left" if mine["left"] else ""
            if clean:
                best = min(clean)
                line(mine["ms"] <= 1.2 * best and not mine["left"],
                     f"teardown ≤ 1.2× best anchor, {mode}, N={n}: {fmt_ms(mine['ms'])} vs {fmt_ms(best)} = "
                     f"{mine['ms'] / best:.2f}×{left}")
            fr = mine["floor_ratio"]
            if fr is not None:
                line(fr <= 1.5 and not mine["left"],
                     f"teardown ≤ 1.5× the floor, {mode}, N={n}: {fr:.2f}× (floor "
                     f"{fmt_ms(td[('direct', mode, n)]['ms'])}){left}")
    for n in args.sizes:
        g, s = td[(oc.name, "group", n)]["ms"], td[(oc.name, "setsid", n)]["ms"]
        if g is not None and s is not None:
            left = td[(oc.name, "setsid", n)]["left"]
            line(s <= 1.5 * g and not left,
                 f"setsid ≤ 1.5× own group case, N={n}: {fmt_ms(s)} vs {fmt_ms(g)} = {s / g:.2f}×"
                 + (f", {left} left" if left else ""))
    sizes = sorted(args.sizes)
    if len(sizes) >= 2:
        lo, hi = sizes[-2], sizes[-1]
        for mode in ("group", "setsid"):
            a, b = td[(oc.name, mode, lo)]["ms"], td[(oc.name, mode, hi)]["ms"]
            if a and b:
                r = b / a
                # With a fixed cost per teardown a linear cost gives a ratio
                # below N_hi/N_lo; allow 20 % noise above it.
                line(r <= 1.2 * hi / lo, f"teardown linear in N ({mode}): t({hi})/t({lo}) = {r:.2f} "
                                         f"({hi / lo:.0f} = linear, PASS up to {1.2 * hi / lo:.1f}; "
                                         f"{b / hi * 1e3:.0f} µs per process at N={hi})")


def scan_targets(oc, scans, out, line) -> None:
    for key, label in (("reap_dry_run", "reap --dry-run"), ("ps", "ps")):
        r = oc.results[key]
        if r["ms"] is None:
            out.append(f"- n/a: {label} ≤ 20 ms with 2000 processes: {r['note']}")
        else:
            # The machine may hold more than our 2000 (other users); the cost
            # per process above `ocwrap --version` makes runs comparable.
            base = oc.results.get("version_ms", 0.0)
            per = (r["ms"] - base) / scans["processes"] * 1e3
            line(r["ms"] <= 20, f"{label} ≤ 20 ms with 2000 processes: {fmt_ms(r['ms'])} with "
                                f"{scans['processes']} = {r['ms'] / 20:.2f}× the target "
                                f"({per:.1f} µs per process above start-up)")
    return out


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    static = REPO / "target" / host_triple() / "release" / "ocwrap"
    ap.add_argument("--ocwrap", default=str(static),
                    help="the main ocwrap column: the static build, as users get it (scripts/build-static.sh)")
    ap.add_argument("--default-build", default=str(REPO / "target/release/ocwrap"),
                    help="the default build's column (cargo build --release); '' for none")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=PATH",
                    help="another ocwrap build as its own column (repeatable)")
    ap.add_argument("--runs", type=int, default=200, help="start-up runs per wrapper")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000, 5000],
                    help="teardown/reap tree sizes (comma separated)")
    ap.add_argument("--reps", type=int, default=3, help="teardown and burst repetitions for N < 5000 (median)")
    ap.add_argument("--reps-large", type=int, default=3, help="the same for N >= 5000")
    ap.add_argument("--ocwrap-args", default="", help="extra ocwrap options, e.g. '--forward-to group'")
    ap.add_argument("--idle", type=float, default=5.0, help="idle window in seconds")
    ap.add_argument("--scan-procs", type=int, default=2000, help="unrelated sleepers for reap/ps")
    ap.add_argument("--scan-runs", type=int, default=30, help="runs of reap --dry-run and ps")
    ap.add_argument("--check-workspaces", type=int, default=100, help="workspaces for ps --check")
    ap.add_argument("--check-silent", type=int, default=25,
                    help="how many of them accept the health check's connection and never answer")
    ap.add_argument("--check-runs", type=int, default=3, help="runs of ps --check")
    ap.add_argument("--grace", default="10s", help="ocwrap --grace")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="after the wrapper exited, seconds without a death before the rest counts as survivors")
    ap.add_argument("--teardown-timeout", type=float, default=30.0)
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install missing anchors")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--only", type=lambda s: set(s.split(",")), default=set(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    args = ap.parse_args()

    builds = [("ocwrap", args.ocwrap, "scripts/build-static.sh")]
    if args.default_build:
        builds.append(("ocwrap default build", args.default_build, "cargo build --release --locked"))
    builds += [(*a.split("=", 1), "a build") for a in args.also]
    for label, path, how in builds:
        if not os.access(path, os.X_OK):
            print(f"{label}: {path} not found: run `{how}` first", file=sys.stderr)
            return 2
    if not shutil.which("gcc"):
        print("gcc is needed for the helper", file=sys.stderr)
        return 2
    ensure_anchors(not args.no_install)

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("warning: cannot become a subreaper; escaped processes go to PID 1", file=sys.stderr)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(args.sizes + [args.scan_procs]) * 2 + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))

    atexit.register(cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: sys.exit(128 + s))

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ocbench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "helper.c").write_text(HELPER_C)
        helper = str(tmp / "helper")
        subprocess.run(["gcc", "-O2", "-Wall", "-o", helper, str(tmp / "helper.c")], check=True)
        # Run private copies: a `cargo build` elsewhere in the checkout
        # replaces target/release/ocwrap, and a binary swapped mid-run
        # measures two builds (or crashes while half written).
        copies = []
        for i, (label, path, _) in enumerate(builds):
            copy = tmp / f"bin{i}" / "ocwrap"
            copy.parent.mkdir()
            shutil.copy2(path, copy)
            copies.append((label, str(copy)))
        bench = Bench(args, tmp, helper)
        ws = wrappers(copies, args.grace, args.ocwrap_args.split())
        base = Wrapper("bare", [], "")

        def phase(name):
            print(f"[{time.monotonic() - started:5.0f} s] {name} ...", file=sys.stderr)

        td, reaps, scans, checks = {}, {}, {}, {}
        # `--version` timing feeds the scan rows' per-process cost.
        if args.only & {"startup", "scan"}:
            phase("start-up")
            bench.startup(ws, base)
        if "idle" in args.only:
            phase(f"peak RSS and {args.idle:g} s idle")
            bench.idle(ws)
        if "teardown" in args.only:
            phase("teardown")
            td = bench.teardowns(ws)
        if "burst" in args.only:
            phase("orphan bursts")
        for n in args.sizes if "burst" in args.only else []:
            reps = args.reps_large if n >= 5000 else args.reps
            got: dict[str, list[dict]] = {}
            for _ in range(reps):
                for w in ws:
                    if not w.light:
                        got.setdefault(w.name, []).append(bench.reap_burst(w, n))
            for name, rs in got.items():
                ok = [r["ms"] for r in rs if r["ms"] is not None]
                reaps[(name, n)] = {"ms": statistics.median(ok), "runs": ok} if ok else rs[0]
        if "scan" in args.only:
            phase(f"reap/ps with {args.scan_procs} extra processes")
            scans = bench.scans([w for w in ws if w.is_ocwrap], args.scan_procs)
        if "check" in args.only:
            phase(f"ps --check with {args.check_workspaces} workspaces, {args.check_silent} never answering")
            checks = bench.ps_check([w for w in ws if w.is_ocwrap], args.check_workspaces, args.check_silent)

    table, notes = report(ws, base, td, reaps, scans, checks, args, bench)
    print("## Machine\n")
    print("\n".join(machine(ws, bench)))
    print("\n## Results\n")
    print(table)
    print()
    print("\n".join(f"- {n}" for n in notes))
    print("\n## Targets\n")
    print("\n".join(targets(ws, td, scans, args)))
    print(f"\n(benchmark took {time.monotonic() - started:.0f} s)")
    if args.json:
        raw = {
            "wrappers": {w.name: w.results for w in [base, *ws]},
            "teardown": {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in td.items()},
            "reap_burst": {f"{k[0]}|{k[1]}": v for k, v in reaps.items()},
            "scans": scans,
            "ps_check": checks,
            "background_busy": bench.background_busy,
            "processes_at_teardowns": bench.procs_seen,
        }
        Path(args.json).write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
