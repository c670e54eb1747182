#!/usr/bin/env python3
"""Checks that every public type of each library module appears in its DocC catalogue (a ``Type`` link in
Sources/<module>/Docs.docc/*.md, usually its topic list), so that an integrator finds what they wire.
Exits 1 naming the module and the missing types.

    scripts/check-topics.py
"""
import glob, os, re, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
# Library targets: Sources/<name> and the transport targets under Sources/IoTProtocols.
skip = {"IoTProtocols", "iotd", "iot-js-worker", "Umbrella", "IoTIO", "Docs.docc"}
folders = sorted(glob.glob("Sources/*/") + glob.glob("Sources/IoTProtocols/*/"))
failed = 0
for folder in folders:
    name = os.path.basename(folder.rstrip("/"))
    if name.startswith("CIoT") or name in skip:
        continue
    types = set()
    for path in glob.glob(folder + "**/*.swift", recursive=True):
        text = open(path, encoding="utf-8").read()
        types |= set(re.findall(r"^(?:public|open) (?:final )?(?:actor|class|struct|enum|protocol) (\w+)", text, re.M))
    docs = "".join(open(p, encoding="utf-8").read() for p in glob.glob(folder + "Docs.docc/*.md"))
    missing = sorted(t for t in types if f"``{t}``" not in docs and f"``{t}/" not in docs)
    if missing:
        failed += 1
        print(f"FAILED: {name}: public types missing from {folder}Docs.docc: {', '.join(missing)}")
print(f"{len(folders)} folders checked, {failed} with public types missing from their DocC topics")
sys.exit(1 if failed else 0)
