#!/usr/bin/python3
"""QMP driver and observer for bench/migrate-downtime and
bench/group-switchover."""
import argparse, json, os, selectors, socket, sys, time


class QMPError(Exception):
    pass


class NotReady(Exception):
    """The libvirt flow's mirror did not become ready in time."""


class QMP:
    """A tiny QMP client: a unix socket, the greeting, qmp_capabilities,
    then commands answered in order; events met meanwhile are queued."""

    def __init__(self, path, timeout=10.0, name=None):
        self.name = name or path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except OSError as e:
                if time.monotonic() >= deadline:
                    raise QMPError(f"{self.name}: cannot connect: {e}")
                time.sleep(0.05)
        self.buf = b""
        self.events = []
        self.last_id = 0
        greeting = self.read(deadline)
        if "QMP" not in greeting:
            raise QMPError(f"{self.name}: no QMP greeting: {greeting}")
        self.cmd("qmp_capabilities", timeout=timeout)

    def read(self, deadline):
        """One message; TimeoutError at the deadline."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError
            if not data:
                raise QMPError(f"{self.name}: QEMU closed the monitor")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line) if line.strip() else self.read(deadline)

    def pending(self):
        """Every message that can be read without waiting."""
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    raise QMPError(f"{self.name}: QEMU closed the monitor")
                self.buf += data
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self.sock.setblocking(True)
        msgs = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                msgs.append(json.loads(line))
        return msgs

    def cmd(self, execute, args=None, timeout=30.0):
        self.last_id += 1
        msg = {"execute": execute, "id": self.last_id}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.read(deadline)
            except TimeoutError:
                raise QMPError(f"{self.name}: {execute}: no reply in {timeout} s")
            if "event" in reply:
                self.events.append(reply)
            elif reply.get("id") == self.last_id:
                if "error" in reply:
                    raise QMPError(f"{self.name}: {execute}: "
                                   f"{reply['error'].get('desc')}")
                return reply.get("return")

    def wait_event(self, match, timeout, what):
        """The first event, queued or to come, that match() accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if match(ev):
                    return self.events.pop(i)
            try:
                self.events.append(self.read(deadline))
            except TimeoutError:
                raise QMPError(f"{self.name}: no {what} within {timeout} s")


def ev_time(ev):
    ts = ev.get("timestamp", {})
    return ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6


def is_event(name, **data):
    def match(ev):
        d = ev.get("data", {})
        return ev.get("event") == name and all(d.get(k) == v
                                               for k, v in data.items())
    return match


def migration_status(*states):
    return lambda ev: (ev.get("event") == "MIGRATION"
                       and ev["data"].get("status") in states)


def dump(obj, path):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.rename(path + ".tmp", path)


def wchar(pid):
    """Bytes the process passed to write(2)-like calls (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return None


def c_status(a):
    print(QMP(a.socket, timeout=a.timeout).cmd("query-status")["status"])


def c_cmd(a):
    q = QMP(a.socket, timeout=a.timeout)
    ret = q.cmd(a.execute, json.loads(a.args) if a.args else None,
                timeout=a.timeout)
    print(json.dumps(ret))


def c_observe(a):
    """Record the events of both QEMUs with their own timestamps, until
    the destination has resumed and the source reports the migration
    completed (or failed); then the source's query-migrate."""
    src = QMP(a.src, name="source (observer)")
    dst = QMP(a.dst, name="destination (observer)")
    with open(a.ready, "w") as f:
        f.write("ready\n")
    sel = selectors.DefaultSelector()
    sel.register(src.sock, selectors.EVENT_READ, ("source", src))
    sel.register(dst.sock, selectors.EVENT_READ, ("destination", dst))
    log = []
    result = {"complete": False}
    deadline = time.monotonic() + a.timeout
    resumed = failed = False
    next_poll = 0.0
    try:
        while time.monotonic() < deadline:
            if (resumed or failed) and time.monotonic() >= next_poll:
                info = src.cmd("query-migrate")
                status = info.get("status")
                if status in ("completed", "failed", "cancelled"):
                    result["query-migrate"] = info
                    result["migrate-parameters"] = src.cmd(
                        "query-migrate-parameters")
                    result["complete"] = status == "completed" and resumed
                    break
                next_poll = time.monotonic() + 0.05
            for side, q in (("source", src), ("destination", dst)):
                while q.events:
                    log.append((side, q.events.pop(0)))
            for key, _ in sel.select(timeout=0.05):
                side, q = key.data
                for ev in q.pending():
                    if "event" not in ev:
                        continue
                    log.append((side, ev))
                    if side == "destination" and ev["event"] == "RESUME":
                        resumed = True
                    if side == "source" and migration_status(
                            "failed", "cancelled")(ev):
                        failed = True
        for side, q in (("source", src), ("destination", dst)):
            log.extend((side, ev) for ev in q.events)
    finally:
        result["events"] = [
            {"side": s, "event": e["event"], "time": ev_time(e),
             "data": e.get("data", {})} for s, e in log]
        evs = result["events"]
        stops = [e["time"] for e in evs
                 if e["side"] == "source" and e["event"] == "STOP"]
        resumes = [e["time"] for e in evs
                   if e["side"] == "destination" and e["event"] == "RESUME"]
        result["source-stops"] = len(stops)
        if resumes:
            before = [t for t in stops if t <= resumes[0]]
            if before:
                result["stop"] = before[-1]
                result["resume"] = resumes[0]
                result["downtime-ms"] = (resumes[0] - before[-1]) * 1000.0
        for side, name, status in (
                ("source", "pre-switchover", "pre-switchover"),
                ("source", "device", "device"),
                ("source", "source-completed", "completed"),
                ("destination", "destination-completed", "completed")):
            t = [e["time"] for e in evs if e["side"] == side
                 and e["event"] == "MIGRATION"
                 and e["data"].get("status") == status]
            if t:
                result[name] = t[0]
        dump(result, a.out)


def c_libvirt_flow(a):
    """The QMP commands 'virsh migrate --live --copy-storage-all' sends
    (libvirt 9.0, one disk, NBD over a unix socket or TCP)."""
    t0 = time.time()
    marks = {}
    out = {}

    def mark(name):
        marks[name] = round(time.time() - t0, 6)

    try:
        src = QMP(a.src, name="source")
        dst = QMP(a.dst, name="destination")
        wchar0 = wchar(a.dest_pid) if a.dest_pid else None
        caps = {"capabilities": [
            {"capability": "events", "state": True},
            {"capability": "pause-before-switchover", "state": True}]}
        # Prepare (destination): capabilities, incoming migration, an NBD
        # server with a writable export of the disk.
        dst.cmd("migrate-set-capabilities", caps)
        dst.cmd("migrate-incoming", {"uri": a.uri})
        if a.nbd_inet:
            host, port = a.nbd_inet.rsplit(":", 1)
            nbd_addr = {"type": "inet", "host": host, "port": port}
        else:
            nbd_addr = {"type": "unix", "path": a.nbd_socket}
        dst.cmd("nbd-server-start",
                {"addr": {"type": nbd_addr["type"],
                          "data": {k: v for k, v in nbd_addr.items()
                                   if k != "type"}}})
        dst.cmd("block-export-add", {"type": "nbd", "id": a.export,
                                     "node-name": a.node, "name": a.export,
                                     "writable": True})
        mark("destination-prepared")
        # Perform (source): libvirt's unlimited bandwidth, a full mirror to
        # the export, memory migration once the mirror is ready.
        src.cmd("migrate-set-capabilities", caps)
        if a.max_bandwidth:
            src.cmd("migrate-set-parameters",
                    {"max-bandwidth": a.max_bandwidth})
        src.cmd("blockdev-add", {"driver": "nbd", "node-name": a.target_node,
                                 "export": a.export,
                                 "server": nbd_addr})
        src.cmd("blockdev-mirror", {"job-id": a.job, "device": a.node,
                                    "target": a.target_node, "sync": "full"})
        mark("mirror-started")
        try:
            ev = src.wait_event(
                lambda e: is_event("BLOCK_JOB_READY", device=a.job)(e)
                or is_event("BLOCK_JOB_COMPLETED", device=a.job)(e),
                a.ready_timeout, "BLOCK_JOB_READY")
        except QMPError:
            # The mirror never caught up with the guest's writes (virsh
            # would wait for ever): cancel it, the source goes on.
            jobs = {j["device"]: j for j in src.cmd("query-block-jobs")}
            if a.job not in jobs:
                raise
            out["not-ready"] = True
            out["mirror-offset"] = jobs[a.job].get("offset")
            out["mirror-len"] = jobs[a.job].get("len")
            if wchar0 is not None:
                out["nbd-write-bytes"] = wchar(a.dest_pid) - wchar0
            src.cmd("block-job-cancel", {"device": a.job, "force": True})
            src.wait_event(lambda e: e.get("event") in (
                "BLOCK_JOB_CANCELLED", "BLOCK_JOB_COMPLETED")
                and e.get("data", {}).get("device") == a.job,
                a.timeout, "BLOCK_JOB_CANCELLED")
            src.cmd("blockdev-del", {"node-name": a.target_node})
            dst.cmd("nbd-server-stop")
            mark("given-up")
            print(f"libvirt-flow: the mirror was not ready after "
                  f"{a.ready_timeout:g} s (offset {out['mirror-offset']} of "
                  f"{out['mirror-len']}): cancelled", file=sys.stderr)
            out["ok"] = False
            raise NotReady
        if ev["event"] == "BLOCK_JOB_COMPLETED":
            # A mirror that failed (a lost NBD connection) ends before it
            # is ready; libvirt then fails the migration ("migration of
            # disk vda failed: ...") and the source goes on.
            raise QMPError(f"source: the mirror ended before it was ready: "
                           f"{ev['data'].get('error', 'no error given')}")
        mark("mirror-ready")
        src.cmd("migrate", {"uri": a.uri})
        mark("migrate")
        ev = src.wait_event(migration_status("pre-switchover", "failed",
                                             "cancelled"),
                            a.timeout, "MIGRATION pre-switchover")
        if ev["data"]["status"] != "pre-switchover":
            raise QMPError(f"source: migration {ev['data']['status']}")
        mark("pre-switchover")
        # The source is paused: cancel the mirror (no pivot) once it has
        # written everything, then let the switchover go on.
        jobs = {j["device"]: j for j in src.cmd("query-block-jobs")}
        if a.job not in jobs:
            raise QMPError(f"source: mirror {a.job} gone at pre-switchover")
        out["mirror-offset"] = jobs[a.job].get("offset")
        out["mirror-len"] = jobs[a.job].get("len")
        src.cmd("block-job-cancel", {"device": a.job})
        done = src.wait_event(is_event("BLOCK_JOB_COMPLETED", device=a.job),
                              a.timeout, "BLOCK_JOB_COMPLETED")
        if done["data"].get("error"):
            raise QMPError(f"source: mirror ended with "
                           f"{done['data']['error']}")
        mark("mirror-cancelled")
        if wchar0 is not None:
            # The destination guest is not running yet: all it wrote so
            # far came through the NBD export.
            out["nbd-write-bytes"] = wchar(a.dest_pid) - wchar0
        out["mirror-final-offset"] = done["data"].get("offset")
        src.cmd("migrate-continue", {"state": "pre-switchover"})
        ev = src.wait_event(migration_status("completed", "failed",
                                             "cancelled"),
                            a.timeout, "MIGRATION completed")
        if ev["data"]["status"] != "completed":
            raise QMPError(f"source: migration {ev['data']['status']}")
        mark("completed")
        out["seconds"] = time.time() - t0
        info = src.cmd("query-migrate")
        out["ram-bytes"] = info.get("ram", {}).get("transferred")
        # Finish: the destination's NBD server goes, and the source's
        # client node.
        dst.cmd("nbd-server-stop")
        src.cmd("blockdev-del", {"node-name": a.target_node})
        out["ok"] = True
    except NotReady:
        pass
    except (QMPError, OSError) as e:
        out["ok"] = False
        out["error"] = str(e)
        print(f"libvirt-flow: {e}", file=sys.stderr)
    finally:
        out["marks"] = marks
        dump(out, a.out)
    if out.get("not-ready"):
        sys.exit(3)
    if not out["ok"]:
        sys.exit(1)


def c_compare(a):
    """Source against destination after the destination guest ran and
    wrote: every 4 KiB block that differs must be a guest pattern block
    (pattern.h) for that block number with a generation above every
    generation on the source, i.e. written after the switchover."""
    bs, chunk, magic = 4096, 1 << 20, b"VMSBLK01"
    size = os.path.getsize(a.source)
    if os.path.getsize(a.dest) != size:
        print(f"sizes differ: {size} and {os.path.getsize(a.dest)}")
        sys.exit(1)

    def header(blk):
        if blk[:8] != magic:
            return None
        return (int.from_bytes(blk[8:16], "little"),
                int.from_bytes(blk[16:24], "little"))

    src_max = 0
    diffs = []
    with open(a.source, "rb") as fs, open(a.dest, "rb") as fd:
        off = 0
        while off < size:
            s, d = fs.read(chunk), fd.read(chunk)
            if not s:
                break
            if magic in s:
                for i in range(0, len(s), bs):
                    h = header(s[i:i + bs])
                    if h and h[1] > src_max:
                        src_max = h[1]
            if s != d:
                diffs.extend((off + i, d[i:i + bs])
                             for i in range(0, len(s), bs)
                             if s[i:i + bs] != d[i:i + bs])
            off += len(s)
    bad = [(off, header(blk)) for off, blk in diffs
           if not header(blk) or header(blk)[0] != off // bs
           or header(blk)[1] <= src_max]
    print(f"{len(diffs)} blocks differ, all written by the guest after the "
          f"switchover (source max generation {src_max})" if not bad else
          f"{len(bad)} of {len(diffs)} differing blocks were not written "
          f"after the switchover (source max generation {src_max})")
    for off, h in bad[:5]:
        print(f"  offset {off}: destination block header {h}")
    sys.exit(1 if bad else 0)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="sub", required=True)
    s = sub.add_parser("status")
    s.add_argument("socket")
    s.add_argument("--timeout", type=float, default=1.0)
    s.set_defaults(fn=c_status)
    s = sub.add_parser("cmd")
    s.add_argument("socket")
    s.add_argument("execute")
    s.add_argument("args", nargs="?")
    s.add_argument("--timeout", type=float, default=30.0)
    s.set_defaults(fn=c_cmd)
    s = sub.add_parser("observe")
    s.add_argument("--src", required=True)
    s.add_argument("--dst", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--ready", required=True)
    s.add_argument("--timeout", type=float, default=600.0)
    s.set_defaults(fn=c_observe)
    s = sub.add_parser("libvirt-flow")
    s.add_argument("--src", required=True)
    s.add_argument("--dst", required=True)
    s.add_argument("--uri", required=True)
    nbd = s.add_mutually_exclusive_group(required=True)
    nbd.add_argument("--nbd-socket")
    nbd.add_argument("--nbd-inet", metavar="HOST:PORT")
    s.add_argument("--dest-pid", type=int)
    s.add_argument("--node", default="d0")
    s.add_argument("--export", default="drive-vd0")
    s.add_argument("--target-node", default="migration-vd0")
    s.add_argument("--job", default="drive-vd0")
    s.add_argument("--max-bandwidth", type=int, default=0)
    s.add_argument("--ready-timeout", type=float, default=600.0)
    s.add_argument("--timeout", type=float, default=600.0)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=c_libvirt_flow)
    s = sub.add_parser("compare")
    s.add_argument("source")
    s.add_argument("dest")
    s.set_defaults(fn=c_compare)
    a = p.parse_args()
    try:
        a.fn(a)
    except (QMPError, OSError) as e:
        print(f"{a.sub}: {e}", file=sys.stderr)
        sys.exit(2)


main()
