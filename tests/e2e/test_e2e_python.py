"""python3 (riscv64, preloaded) reading and writing gkfs: its script itself
is read from gkfs; files, directories, rename, append, seek, os.walk,
shutil, and threads; the results are read back through the Client."""
from __future__ import annotations

import json
import os

from e2e_harness import LocalCluster, Riscv64Preload

SCRIPT = r'''
import json, os, shutil, sys, threading
top, local = sys.argv[1], sys.argv[2]
os.makedirs(f"{top}/py/deep/er")
with open(f"{top}/py/text.txt", "w") as f:
    for i in range(5000):
        f.write(f"line {i}\n")
with open(f"{top}/py/text.txt", "a") as f:
    f.write("appended\n")
with open(f"{top}/py/text.txt") as f:
    lines = f.read().splitlines()
assert lines[0] == "line 0" and lines[-1] == "appended" and len(lines) == 5001, lines[-3:]
blob = bytes(range(256)) * 1000
with open(f"{top}/py/blob.bin", "wb") as f:
    f.write(blob)
with open(f"{top}/py/blob.bin", "r+b") as f:
    f.seek(100_000)
    f.write(b"X" * 10)
    assert f.tell() == 100_010
    f.seek(-6, os.SEEK_END)
    tail = f.read()
assert tail == blob[-6:], tail
shutil.copyfile(f"{local}/in.bin", f"{top}/py/deep/er/copied.bin")
shutil.copyfile(f"{top}/py/blob.bin", f"{local}/blob-out.bin")
os.rename(f"{top}/py/text.txt", f"{top}/py/deep/text.txt")
st = os.stat(f"{top}/py/blob.bin")
def work(i):
    with open(f"{top}/py/t{i}.dat", "wb") as f:
        f.write(bytes([i]) * (70_000 + i))
ts = [threading.Thread(target=work, args=(i,)) for i in range(6)]
for t in ts: t.start()
for t in ts: t.join()
walk = sorted((os.path.relpath(d, top), sorted(ds), sorted(fs)) for d, ds, fs in os.walk(top))
os.remove(f"{top}/py/t5.dat")
# descriptors across fork+exec (subprocess): an inherited gkfs fd shares its
# offset with the child; an O_CLOEXEC one is gone in the child
import subprocess
fd = os.open(f"{top}/py/deep/text.txt", os.O_RDONLY)
os.dup2(fd, 5)
os.lseek(5, 7, os.SEEK_SET)
child = subprocess.run(["head", "-c", "6"], stdin=5, capture_output=True)
inherited = [child.returncode, child.stdout.decode(), os.lseek(5, 0, os.SEEK_CUR)]
fd6 = os.open(f"{top}/py/deep/text.txt", os.O_RDONLY | os.O_CLOEXEC)
os.dup2(fd6, 6, inheritable=False)
child = subprocess.run(["dash", "-c", "cat <&6"], close_fds=False, capture_output=True)
cloexec = [child.returncode, child.stdout.decode()]
with open(f"{local}/result.json", "w") as f:
    json.dump({"size": st.st_size, "isdir": os.path.isdir(f"{top}/py/deep"),
               "walk": walk, "listdir": sorted(os.listdir(f"{top}/py")),
               "exists_removed": os.path.exists(f"{top}/py/t5.dat"),
               "inherited": inherited, "cloexec": cloexec}, f)
print("python ok")
'''


def test_python_reads_and_writes(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local):
    inp = os.urandom(200_000)
    (local / "in.bin").write_bytes(inp)
    gkfs.client.write_file(gkfs.gk(f"{gkdir}/script.py"), SCRIPT.encode())
    r = rv.run(["python3", f"{gkdir}/script.py", gkdir, str(local)]).ok()
    assert r.out.strip() == "python ok", r.describe()

    res = json.loads((local / "result.json").read_text())
    blob = bytearray(bytes(range(256)) * 1000)
    blob[100_000:100_010] = b"X" * 10
    assert res["size"] == len(blob) and res["isdir"] and not res["exists_removed"]
    assert res["listdir"] == sorted(["blob.bin", "deep"] + [f"t{i}.dat" for i in range(5)])  # t5 removed
    assert ["py/deep", ["er"], ["text.txt"]] in res["walk"], res["walk"]
    # head read 6 bytes from offset 7 of "line 0\nline 1\n...": the parent's offset moved too
    # (head may read more than it prints; the offset is past what it printed)
    assert res["inherited"][:2] == [0, "line 1"] and res["inherited"][2] >= 13, res["inherited"]
    assert res["cloexec"][0] != 0 and res["cloexec"][1] == "", res["cloexec"]

    assert gkfs.read(f"{gkdir}/py/blob.bin") == bytes(blob)
    assert (local / "blob-out.bin").read_bytes() == bytes(blob)
    assert gkfs.read(f"{gkdir}/py/deep/er/copied.bin") == inp
    text = gkfs.read(f"{gkdir}/py/deep/text.txt").decode()
    assert text == "".join(f"line {i}\n" for i in range(5000)) + "appended\n"
    assert not gkfs.exists(f"{gkdir}/py/text.txt")
    for i in range(5):
        assert gkfs.read(f"{gkdir}/py/t{i}.dat") == bytes([i]) * (70_000 + i)
    assert not gkfs.exists(f"{gkdir}/py/t5.dat")
    gkfs.assert_spread([f"{gkdir}/py/blob.bin", f"{gkdir}/py/deep/er/copied.bin"] +
                       [f"{gkdir}/py/t{i}.dat" for i in range(5)])


def test_python_imports_and_dlopen_from_gkfs(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, sysroot):
    """Code stored in gkfs: python3 imports a module from it (and writes its
    __pycache__ there), and dlopen()s a riscv64 shared library copied into it
    (ld.so's own calls are intercepted, the mapping is a private copy)."""
    libz = sysroot / "usr/lib/riscv64-linux-gnu/libz.so.1"
    gkfs.client.mkdir(gkfs.gk(f"{gkdir}/lib"))
    gkfs.client.write_file(gkfs.gk(f"{gkdir}/lib/gkmod.py"), b"def hello():\n    return 'hi from gkfs'\n")
    gkfs.client.write_file(gkfs.gk(f"{gkdir}/lib/libz-copy.so"), libz.read_bytes())
    r = rv.run(["python3", "-c",
                "import sys, ctypes\n"
                "sys.path.insert(0, sys.argv[1])\n"
                "import gkmod\n"
                "z = ctypes.CDLL(sys.argv[1] + '/libz-copy.so')\n"
                "z.zlibVersion.restype = ctypes.c_char_p\n"
                "print(gkmod.hello(), gkmod.__file__, z.zlibVersion().decode())",
                f"{gkdir}/lib"]).ok()
    words = r.out.split()
    assert words[:3] == ["hi", "from", "gkfs"] and words[3] == f"{gkdir}/lib/gkmod.py", r.out
    assert words[4][0].isdigit(), r.out
    pyc = gkfs.listdir(f"{gkdir}/lib/__pycache__")
    assert len(pyc) == 1 and pyc[0].startswith("gkmod.") and pyc[0].endswith(".pyc"), pyc
