"""xwddiff: where two screenshots of the same display (xwd -root) differ,
for t/0930-x11.bats.

usage: /usr/bin/python3 xwddiff.py BEFORE AFTER

Prints one line: "xwddiff: same" when their pixels are equal, else the
rectangle holding every pixel that differs, how many do, and the first
of them (row by row) with its value before and after, e.g.
"xwddiff: 4096 pixels differ in x 150..213, y 140..203; first (150,140):
0x013c6e -> 0x000000".  Exit 0 if the same, 1 if not, 2 if either file
is no 32-bit xwd image of the same size.
"""
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 100:
        sys.exit("xwddiff: %s: too short for an xwd header" % path)
    h = struct.unpack(">25I", b[:100])
    size, width, height, bpp, bpl, ncolors = h[0], h[4], h[5], h[11], h[12], h[19]
    start = size + ncolors * 12
    if bpp != 32 or len(b) < start + bpl * height:
        print("xwddiff: %s: not a whole 32-bit image" % path)
        sys.exit(2)
    order = "<" if h[7] == 0 else ">"
    return width, height, bpl, b[start:start + bpl * height], order


def main():
    wa, ha, bpla, a, order = load(sys.argv[1])
    wb, hb, bplb, b, _ = load(sys.argv[2])
    if (wa, ha, bpla) != (wb, hb, bplb):
        print("xwddiff: %dx%d before, %dx%d after" % (wa, ha, wb, hb))
        sys.exit(2)
    n, first, box = 0, None, [wa, ha, -1, -1]
    for y in range(ha):
        ra, rb = a[y * bpla:y * bpla + wa * 4], b[y * bpla:y * bpla + wa * 4]
        if ra == rb:
            continue
        for x in range(wa):
            pa = struct.unpack(order + "I", ra[x * 4:x * 4 + 4])[0] & 0xffffff
            pb = struct.unpack(order + "I", rb[x * 4:x * 4 + 4])[0] & 0xffffff
            if pa == pb:
                continue
            n += 1
            if first is None:
                first = (x, y, pa, pb)
            box = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)]
    if not n:
        print("xwddiff: same")
        return 0
    print("xwddiff: %d pixels differ in x %d..%d, y %d..%d; first (%d,%d): 0x%06x -> 0x%06x" %
          (n, box[0], box[2], box[1], box[3], *first))
    return 1


sys.exit(main())
