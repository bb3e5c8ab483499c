"""Helpers shared by the bench scripts: markdown tables and /proc process facts."""


def table(header, rows) -> None:
    """Prints a markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print()


def ppid_of(pid: int) -> int:
    """The parent pid of pid, or -1 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def is_live(pid: int, name: bytes) -> bool:
    """True if pid is a live (not zombie) process whose command line contains name."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except (OSError, IndexError):
        return False
    return state != "Z" and name in cmd
