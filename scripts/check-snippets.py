#!/usr/bin/env python3
"""Type-checks the Swift code blocks of the README and the DocC articles that are marked to be compiled
(the line `<!-- compiled: scripts/check-snippets.py -->` right above the block), against the package's debug
build, so that they cannot rot; a block marked `<!-- manifest: scripts/check-snippets.py -->` is a whole
Package.swift, evaluated with `swift package dump-package`. Run after `swift build`; exits 1 naming the file
and block that fails.

    scripts/check-snippets.py [FILE ...]     default: README.md and every Sources/*/Docs.docc/*.md
"""
import glob, os, subprocess, sys, tempfile

MARK = "<!-- compiled: scripts/check-snippets.py -->"
MANIFEST = "<!-- manifest: scripts/check-snippets.py -->"
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
files = sys.argv[1:] or ["README.md"] + sorted(glob.glob("Sources/**/Docs.docc/*.md", recursive=True))
modules = os.path.join(root, ".build", "debug", "Modules")
maps = []
# The C modules: our shims, and those of dependencies (swift-atomics' _AtomicsShims, …) that SwiftPM generated.
for m in sorted(glob.glob(os.path.join(root, "Sources", "CIoT*", "module.modulemap"))
                + glob.glob(os.path.join(root, ".build", "debug", "*.build", "module.modulemap"))
                + glob.glob(os.path.join(root, ".build", "checkouts", "*", "Sources", "*", "include", "module.modulemap"))):
    maps += ["-Xcc", "-fmodule-map-file=" + m]
# The include paths the system libraries' pkg-config files give (libmodbus' headers are in include/modbus).
for package in ["libmodbus", "libcoap-3-openssl", "lua5.4", "duktape", "libmosquitto", "libcurl", "sqlite3"]:
    r = subprocess.run(["pkg-config", "--cflags", package], capture_output=True, text=True)
    for flag in r.stdout.split():
        maps += ["-Xcc", flag]
failed = checked = 0
for name in files:
    lines = open(os.path.join(root, name), encoding="utf-8").read().split("\n")
    for i, line in enumerate(lines):
        if line.strip() not in (MARK, MANIFEST) or i + 1 >= len(lines) or lines[i + 1].strip() != "```swift":
            continue
        end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
        with tempfile.TemporaryDirectory() as d:
            if line.strip() == MANIFEST:
                open(os.path.join(d, "Package.swift"), "w").write("\n".join(lines[i + 2:end]) + "\n")
                r = subprocess.run(["swift", "package", "dump-package", "--package-path", d],
                                   capture_output=True, text=True)
            else:
                path = os.path.join(d, "main.swift")
                open(path, "w").write("\n".join(lines[i + 2:end]) + "\n")
                r = subprocess.run(["swiftc", "-typecheck", "-swift-version", "6", "-I", modules, *maps, path],
                                   capture_output=True, text=True)
        checked += 1
        if r.returncode != 0:
            failed += 1
            print(f"FAILED: the code block of {name} at line {i + 2} does not compile:\n{r.stdout}{r.stderr}")
print(f"{checked} marked code blocks type-checked, {failed} failed")
sys.exit(1 if failed else 0)
