# vmmstate.py - for the integration tests' Python checks (PYTHONPATH=tests/integration):
# memconvd's attribute map (`memconvctl --json ranges VM`) against the reference VMM's
# own record of what it applied (`memconv-vmm --state-out`), page by page.
import json

PAGE = 4096


def pages(items):
    """The 4 KiB page numbers of (gpa, size) ranges."""
    s = set()
    for gpa, size in items:
        s.update(range(gpa // PAGE, (gpa + size) // PAGE))
    return s


def same_map(ranges_path, state_path):
    """Print how the two agree; return the daemon's private pages if they do, else None."""
    daemon = pages((r["gpa"], r["size"]) for r in json.load(open(ranges_path))["ranges"]
                   if r["attribute"] == "private")
    vmm = set()
    for line in open(state_path):
        gpa, size, attr = line.split()
        if attr == "private":
            vmm |= pages([(int(gpa, 0), int(size, 0))])
    if daemon != vmm:
        print("memconvd's map and the VMM's record differ: %d pages only in memconvd, %d only in the VMM"
              % (len(daemon - vmm), len(vmm - daemon)))
        return None
    print("map: %d private pages, identical in memconvd and the VMM" % len(daemon))
    return daemon
