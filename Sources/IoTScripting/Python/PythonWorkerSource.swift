/// The program of a Python worker process, run as `python3 -I -S -c <source> --memory-limit N --parent PID`.
///
/// It speaks the frames of ``WorkerOperation`` on the socket that is its stdin and stdout. Before it reads a
/// request it sandboxes itself:
///
/// - no new file descriptor at all (`RLIMIT_NOFILE` = 3): no socket, no file opened for reading or writing, no
///   pipe; and no byte written to a file (`RLIMIT_FSIZE` = 0);
/// - `RLIMIT_AS` of what it uses after start-up plus the memory limit, and `RLIMIT_CPU` as a backstop (the
///   engine kills a worker whose call outlives the time limit);
/// - an audit hook (PEP 578, which cannot be removed) refusing `open`, `socket`, `subprocess`, `exec`, `fork`,
///   `spawn`, `system`, `ctypes` and imports of modules outside the allow-list;
/// - scripts get a copy of the builtins without `open`, `input`, `breakpoint`, `exit` and `quit`, and an
///   `__import__` that gives only modules imported before the sandbox closed (json, math, re, datetime, time,
///   struct, base64, binascii, statistics, collections, itertools, functools, string).
enum PythonWorkerSource {
    static let program = #"""
        import sys, os, struct, resource, signal

        ALLOWED = ("json", "math", "re", "datetime", "time", "struct", "base64", "binascii", "statistics",
                   "collections", "itertools", "functools", "string")
        MODULES = {name: __import__(name) for name in ALLOWED}
        import builtins

        args = sys.argv[1:]
        memory = int(args[args.index("--memory-limit") + 1]) if "--memory-limit" in args else 128 << 20
        parent = int(args[args.index("--parent") + 1]) if "--parent" in args else 0

        def vm_size():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")

        used = vm_size()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if parent:
            try:
                import ctypes
                ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the engine
            except Exception:
                pass
        resource.setrlimit(resource.RLIMIT_AS, (used + memory, used + memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (3600, 3600))
        resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))

        BLOCKED = ("open", "socket.", "subprocess.", "os.exec", "os.fork", "os.posix_spawn", "os.spawn", "os.system",
                   "os.kill", "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.chmod", "os.chown", "os.link",
                   "os.symlink", "os.truncate", "shutil.", "ctypes.", "sys.addaudithook", "pty.", "urllib.")

        def audit(event, _args):
            if event == "import":
                name = _args[0] or ""
                if name.split(".")[0] not in ALLOWED and name not in sys.modules:
                    raise PermissionError("import of %s is not allowed in a parse script" % name)
            elif event.startswith(BLOCKED):
                raise PermissionError("%s is not allowed in a parse script" % event)

        sys.addaudithook(audit)

        def safe_import(name, globals=None, locals=None, fromlist=(), level=0):
            root = name.split(".")[0]
            if root not in MODULES:
                raise ImportError("module %s is not available to parse scripts; use one of: %s" % (name, ", ".join(ALLOWED)))
            return MODULES[root]

        SAFE = dict(vars(builtins))
        for name in ("open", "input", "breakpoint", "exit", "quit", "help", "memoryview", "__loader__", "__spec__"):
            SAFE.pop(name, None)
        SAFE["__import__"] = safe_import

        def read_exact(n):
            data = b""
            while len(data) < n:
                chunk = os.read(0, n - len(data))
                if not chunk:
                    sys.exit(0)
                data += chunk
            return data

        def write_all(data):
            view = memoryview(data)
            while view:
                n = os.write(1, view)
                view = view[n:]

        class Reader:
            def __init__(self, data):
                self.data, self.at = data, 0
            def take(self, n):
                if self.at + n > len(self.data):
                    raise ValueError("truncated frame")
                part = self.data[self.at:self.at + n]
                self.at += n
                return part
            def u8(self): return self.take(1)[0]
            def u32(self): return struct.unpack("<I", self.take(4))[0]
            def u64(self): return struct.unpack("<Q", self.take(8))[0]
            def string(self): return self.take(self.u32()).decode("utf-8")
            def value(self, depth=0):
                if depth > 200:
                    raise ValueError("nested too deeply")
                tag = self.u8()
                if tag == 0: return None
                if tag == 1: return False
                if tag == 2: return True
                if tag == 3: return struct.unpack("<d", self.take(8))[0]
                if tag == 4: return self.string()
                if tag == 5: return [self.value(depth + 1) for _ in range(self.u32())]
                if tag == 6:
                    out = {}
                    for _ in range(self.u32()):
                        key = self.string()
                        out[key] = self.value(depth + 1)
                    return out
                raise ValueError("unknown value tag %d" % tag)

        def encode_string(out, s):
            b = s.encode("utf-8", "replace")
            out += struct.pack("<I", len(b))
            out += b

        def encode(out, v, depth=0):
            if depth > 200:
                raise ValueError("the result is nested too deeply")
            if v is None: out.append(0)
            elif v is True: out.append(2)
            elif v is False: out.append(1)
            elif isinstance(v, (int, float)):
                out.append(3)
                out += struct.pack("<d", float(v))
            elif isinstance(v, str):
                out.append(4)
                encode_string(out, v)
            elif isinstance(v, (bytes, bytearray)):
                out.append(4)
                encode_string(out, bytes(v).decode("utf-8", "replace"))
            elif isinstance(v, dict):
                out.append(6)
                out += struct.pack("<I", len(v))
                for k, e in v.items():
                    encode_string(out, str(k))
                    encode(out, e, depth + 1)
            elif isinstance(v, (list, tuple)):
                out.append(5)
                out += struct.pack("<I", len(v))
                for e in v:
                    encode(out, e, depth + 1)
            else:
                raise TypeError("a %s cannot be returned; return numbers, strings, booleans, None, lists and dicts" % type(v).__name__)

        def respond(status, payload=b""):
            body = bytes([status]) + payload
            write_all(struct.pack("<I", len(body)) + body)

        def error_text(e, name):
            line = e.lineno if isinstance(e, SyntaxError) else None
            tb = e.__traceback__
            while tb is not None:  # the innermost line of the script (no source file is read)
                if tb.tb_frame.f_code.co_filename == name:
                    line = tb.tb_lineno
                tb = tb.tb_next
            text = "%s: %s" % (type(e).__name__, e)
            return text + (" (line %d)" % line if line else "")

        scripts = {}
        write_all(b"R")
        while True:
            size = struct.unpack("<I", read_exact(4))[0]
            r = Reader(read_exact(size))
            op, current = r.u8(), ""
            try:
                if op == 1:
                    sid, current, source = r.u64(), r.string(), r.string()
                    name = current
                    namespace = {"__builtins__": SAFE, "__name__": name}
                    exec(compile(source, name, "exec"), namespace)
                    scripts[sid] = (name, namespace)
                    respond(0)
                elif op == 2:
                    sid, current, function = r.u64(), r.string(), r.string()
                    name = current
                    arguments = [r.value() for _ in range(r.u32())]
                    if sid not in scripts:
                        raise RuntimeError("script %s is not loaded" % name)
                    target = scripts[sid][1].get(function)
                    if not callable(target):
                        raise NameError("the script defines no function %s" % function)
                    out = bytearray()
                    encode(out, target(*arguments))
                    respond(0, bytes(out))
                elif op == 3:
                    scripts.pop(r.u64(), None)
                    respond(0)
                else:
                    raise ValueError("unknown operation %d" % op)
            except MemoryError:
                out = bytearray()
                encode_string(out, "MemoryError: the script went over its memory limit")
                respond(1, bytes(out))
            except BaseException as e:
                out = bytearray()
                encode_string(out, error_text(e, current))
                respond(1, bytes(out))
        """#
}
