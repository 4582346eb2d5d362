"""A dash script (riscv64, preloaded) with pipelines and redirections into
gkfs: '>' and '>>' opened by the shell and inherited by exec'd children,
'<' from gkfs, an fd kept open with exec 3>, 2> for stderr, a here-document,
cd into gkfs with relative paths, test -f/-d, and a while-read loop."""
from __future__ import annotations

from e2e_harness import LocalCluster, Riscv64Preload

SCRIPT = r'''
top="$1"; local="$2"
mkdir "$top/d"
echo hello > "$top/d/a.txt"
echo world >> "$top/d/a.txt"
seq 1 2000 | sort -rn | tee "$top/d/sorted.txt" | wc -l > "$top/d/count.txt"
sort -n < "$top/d/sorted.txt" | grep 7 | head -n 5 > "$local/sevens.txt"
exec 3> "$top/d/fd3.txt"
echo one >&3
seq 1 3 >&3
echo three >&3
exec 3>&-
ls "$top/d/nope" 2> "$top/d/err.txt" || echo "ls failed as expected" >> "$top/d/a.txt"
cat <<END_OF_HERE > "$top/d/here.txt"
here document
top is $top
END_OF_HERE
cd "$top/d"
[ -f a.txt ] && [ -d . ] && [ ! -e missing ] && echo "tests ok" > tests.txt
cat a.txt fd3.txt | tr a-z A-Z > upper.txt
n=0
while read -r line; do n=$((n + 1)); done < sorted.txt
echo "$n lines" > "$local/lines.txt"
pwd > "$local/pwd.txt"
cp upper.txt ../upper-copy.txt
# a script's own descriptors after gkfs is in use: save stdin/stdout, open
# numbered fds on local files, then keep using gkfs (the hook's internal
# descriptors must not be in the way)
exec 4<&0 5>&1 6< "$local/lines.txt" 7> "$local/seven.txt" 8< "$local/pwd.txt" 9< "$local/sevens.txt"
echo after >> a.txt
read -r first <&6
echo "$first" >&7
cat a.txt > "$local/a-after.txt"
exec 4<&- 5>&- 6<&- 7>&- 8<&- 9<&-
'''


def test_dash_pipelines_and_redirections(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local):
    (local / "s.sh").write_text(SCRIPT)
    r = rv.run(["dash", "-e", str(local / "s.sh"), gkdir, str(local)]).ok()
    d = f"{gkdir}/d"
    assert gkfs.read(f"{d}/a.txt") == b"hello\nworld\nls failed as expected\nafter\n"
    assert (local / "a-after.txt").read_bytes() == gkfs.read(f"{d}/a.txt")
    assert (local / "seven.txt").read_text() == "2000 lines\n"
    assert gkfs.read(f"{d}/sorted.txt") == "".join(f"{i}\n" for i in range(2000, 0, -1)).encode()
    assert gkfs.read(f"{d}/count.txt") == b"2000\n"
    assert (local / "sevens.txt").read_text() == "7\n17\n27\n37\n47\n"
    assert gkfs.read(f"{d}/fd3.txt") == b"one\n1\n2\n3\nthree\n"
    err = gkfs.read(f"{d}/err.txt").decode()
    assert "No such file or directory" in err and f"{d}/nope" in err, err
    assert gkfs.read(f"{d}/here.txt") == f"here document\ntop is {gkdir}\n".encode()
    assert gkfs.read(f"{d}/tests.txt") == b"tests ok\n"
    assert gkfs.read(f"{d}/upper.txt") == b"HELLO\nWORLD\nLS FAILED AS EXPECTED\nONE\n1\n2\n3\nTHREE\n"
    assert gkfs.read(f"{gkdir}/upper-copy.txt") == gkfs.read(f"{d}/upper.txt")
    assert (local / "lines.txt").read_text() == "2000 lines\n"
    assert (local / "pwd.txt").read_text() == f"{d}\n"
    assert r.err == "", r.describe()
    # Small files, one chunk each: together they must still use >= 2 daemons.
    holders = set()
    for name in gkfs.listdir(d):
        holders |= gkfs.chunk_holders(f"{d}/{name}")
    assert len(holders) >= 2, f"the script's files are on daemons {holders} only"
