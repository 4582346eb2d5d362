"""gkfs-ctl patch-report: what the native planner would do to a riscv64 ELF.

Runs the same planner the run-time patcher runs (libgkfs_plan.so through
cffi) over the object's .text (or every executable section), and prints the
instruction count, the ecall sites, how each would be patched (by kind) and
the sites left alone with their reasons, for two trampoline placements.
"""
from __future__ import annotations

import argparse
import json
import sys

ASSUMPTION = (
    "Trampoline placement is simulated as the run-time patcher provides it: "
    "plan 'in reach' puts each site's trampoline in a region right after the "
    "object's highest address or right before its lowest, whichever is nearer; "
    "plan 'gateway only' puts every trampoline 16 MiB past the object (out of "
    "jal's +-1 MiB, within auipc+jalr's +-2 GiB). Addresses shown are link "
    "addresses.")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "patch-report", help="plan the ecall patches of a riscv64 ELF (host, no qemu)",
        description=__doc__.split("\n\n")[1].replace("\n", " ") + " " + ASSUMPTION)
    p.add_argument("elf", help="riscv64 ELF object, e.g. a libc.so.6")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--verify", action="store_true",
                   help="disassemble every patched window and its trampoline with capstone "
                   "and check them against the plan (exit 1 on any mismatch)")
    p.add_argument("--all-sections", action="store_true",
                   help="scan every executable section, not only .text")
    p.add_argument("--sites", action="store_true", help="list every site, not only the summary")
    p.set_defaults(func=run)


def _site_row(s, bias: int) -> dict:
    return {"ecall": s.ecall - bias, "sysno": s.sysno, "kind": s.kind_name,
            "reason": None if s.kind else s.reason_name,
            "win_start": s.win_start - bias, "win_len": s.win_len, "tramp_len": s.tramp_len}


def build_report(path: str, all_sections: bool, verify: bool) -> dict:
    from gkfs_client import plan_elf as pe

    info = pe.read_elf(path, all_sections=all_sections)
    plan = pe.plan_object(info)
    text_bytes = sum(len(r.text.data) for r in plan.ranges)
    rep = {
        "elf": str(info.path),
        "assumption": ASSUMPTION,
        "sections": [{"name": r.text.name, "vaddr": r.text.vaddr, "bytes": len(r.text.data),
                      "insns": r.scan.insns, "ecalls": r.scan.ecalls,
                      "undecodable": r.scan.undecodable} for r in plan.ranges],
        "insns": sum(r.scan.insns for r in plan.ranges),
        "ecalls": sum(r.scan.ecalls for r in plan.ranges),
        "extra_targets": info.target_sources,
        "scan_seconds": plan.seconds,
        "scan_ms_per_mib": plan.seconds * 1000 / (text_bytes / 2**20) if text_bytes else 0.0,
        "plans": {},
    }
    for mode in ("in_reach", "gateway_only"):
        patched, total, kinds, reasons = pe.coverage(plan, mode)
        entry = {"patched": patched, "sites": total, "by_kind": kinds, "unpatched": reasons,
                 "coverage": patched / total if total else 1.0,
                 "sites_list": [_site_row(p.site, pe.LOAD_BIAS) for _, p in plan.all_sites(mode)]}
        if verify:
            from gkfs_client import plan_verify as pv
            failures = []
            checked = 0
            for r, p in plan.all_sites(mode):
                if not p.site.kind:
                    continue
                checked += 1
                try:
                    pv.verify_site(r.ntext, p.site, p.tramp, plan.entry)
                except (pv.Mismatch, ValueError) as exc:
                    failures.append({"ecall": p.site.ecall - pe.LOAD_BIAS, "error": str(exc)})
            entry["verify"] = {"checked": checked, "failures": failures}
        rep["plans"][mode] = entry
    return rep


def _print_rich(rep: dict, show_sites: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]{rep['elf']}[/bold]")
    t = Table(title="scanned")
    for col in ("section", "vaddr", "bytes", "instructions", "ecalls", "undecodable"):
        t.add_column(col, justify="right" if col != "section" else "left")
    for s in rep["sections"]:
        t.add_row(s["name"], f"{s['vaddr']:#x}", str(s["bytes"]), str(s["insns"]),
                  str(s["ecalls"]), str(s["undecodable"]))
    con.print(t)
    src = rep["extra_targets"]
    con.print(f"extra jump targets: {src['symbols']} symbol starts, {src['relative']} "
              f"R_RISCV_RELATIVE/IRELATIVE addends, {src['landing_pads']} landing pads; "
              f"scan {rep['scan_seconds'] * 1000:.1f} ms ({rep['scan_ms_per_mib']:.1f} ms/MiB)")
    t = Table(title="plans")
    for col in ("plan", "sites", "patched", "coverage", "by kind", "not patched (reason)",
                "verify"):
        t.add_column(col)
    for mode, p in rep["plans"].items():
        ver = ""
        if "verify" in p:
            v = p["verify"]
            ver = (f"[green]{v['checked']} ok[/green]" if not v["failures"] else
                   f"[red]{len(v['failures'])} of {v['checked']} FAIL[/red]")
        t.add_row(mode.replace("_", " "), str(p["sites"]), str(p["patched"]),
                  f"{100 * p['coverage']:.1f}%",
                  ", ".join(f"{k} {n}" for k, n in sorted(p["by_kind"].items())) or "-",
                  ", ".join(f"{k} {n}" for k, n in sorted(p["unpatched"].items())) or "-", ver)
    con.print(t)
    con.print(f"[dim]{rep['assumption']}[/dim]")
    for mode, p in rep["plans"].items():
        for f in p.get("verify", {}).get("failures", [])[:20]:
            con.print(f"[red]{mode}: {f['ecall']:#x}: {f['error']}[/red]")
        rows = p["sites_list"] if show_sites else [r for r in p["sites_list"] if r["reason"]]
        if not rows:
            continue
        t = Table(title=f"{mode.replace('_', ' ')}: " + ("sites" if show_sites else "sites not patched"))
        for col in ("ecall", "sysno", "kind", "window", "tramp bytes", "reason"):
            t.add_column(col)
        for r in rows:
            t.add_row(f"{r['ecall']:#x}", str(r["sysno"]) if r["sysno"] >= 0 else "?", r["kind"],
                      f"{r['win_start']:#x}+{r['win_len']}" if r["win_len"] else "-",
                      str(r["tramp_len"]) if r["tramp_len"] else "-", r["reason"] or "")
        con.print(t)


def run(args) -> int:
    from gkfs_client import native_plan as npl
    from gkfs_client import plan_elf as pe

    try:
        rep = build_report(args.elf, args.all_sections, args.verify)
    except FileNotFoundError as exc:
        print(f"gkfs-ctl patch-report: {exc}", file=sys.stderr)
        return 2
    except (pe.NotRiscvElf, npl.PlannerLibraryMissing, ValueError) as exc:
        print(f"gkfs-ctl patch-report: {exc}", file=sys.stderr)
        return 2
    if args.json:
        if not args.sites:
            for p in rep["plans"].values():
                p["sites_list"] = [r for r in p["sites_list"] if r["reason"]]
        json.dump(rep, sys.stdout, indent=1)
        print()
    else:
        _print_rich(rep, args.sites)
    failed = any(p.get("verify", {}).get("failures") for p in rep["plans"].values())
    return 1 if failed else 0
