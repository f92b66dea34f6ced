#!/usr/bin/env python3
"""Per-move handover report from mobility_stream.py logs.

    handover_report.py DIR LABEL MOVES
DIR holds mob.sent, gw.received, gw.sent, mob.received; MOVES is a file of
"t_before t_after name" lines (Unix seconds around the `ip` command).
For each move: time from the end of the `ip` command to the arrival of the
first packet sent after it, each way, and packets lost over the move.
"""
import sys


def load_sent(path):
    return [(int(s), float(t)) for s, t in (l.split() for l in open(path))]


def load_received(path):
    return {int(v[0]): float(v[2]) for v in (l.split() for l in open(path))}


def resumed(sent, received, after):
    for seq, t in sent:
        if t >= after and seq in received:
            return max(0.0, received[seq] - after) * 1000
    return None


def lost(sent, received, start, end):
    return sum(1 for seq, t in sent if start <= t < end and seq not in received)


def main():
    d, label, moves_file = sys.argv[1:4]
    up_s, up_r = load_sent(f"{d}/mob.sent"), load_received(f"{d}/gw.received")
    dn_s, dn_r = load_sent(f"{d}/gw.sent"), load_received(f"{d}/mob.received")
    moves = [l.split() for l in open(moves_file) if l.strip()]
    end = max(t for _, t in up_s) if up_s else 0
    print(f"{label}:")
    print(f"  {'move':<10} {'up ms':>9} {'down ms':>9} {'lost up':>8} {'lost down':>10}")
    for i, (tb, ta, name) in enumerate(moves):
        tb, ta = float(tb), float(ta)
        until = float(moves[i + 1][0]) if i + 1 < len(moves) else end
        fmt = lambda v: "never" if v is None else f"{v:.1f}"
        print(f"  -> {name:<7} {fmt(resumed(up_s, up_r, ta)):>9} {fmt(resumed(dn_s, dn_r, ta)):>9}"
              f" {lost(up_s, up_r, tb, until):>8} {lost(dn_s, dn_r, tb, until):>10}")


if __name__ == "__main__":
    main()
