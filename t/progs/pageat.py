#!/usr/bin/env python3
"""pageat.py IMG ADDR: flip one byte of the page data that the
uncompressed image IMG holds for the page at ADDR (hex), in the first
PAGES record (type 6) that holds it, and print that byte's offset.
Exit 1 if no record holds the page.  See ckpt-image(5): a 192-byte
header, then records of a 16-byte header (type, crc, payload length);
a PAGES payload is nruns, data_crc, npages, nruns runs of (addr, npages),
zero padding to a 4096-byte boundary of the file, then the pages."""
import os
import struct
import sys

PAGE = 4096
path, addr = sys.argv[1], int(sys.argv[2], 16)
size = os.path.getsize(path)
with open(path, "r+b") as f:
    off = 192
    while off + 16 <= size:
        f.seek(off)
        kind, _, length = struct.unpack("<IIQ", f.read(16))
        if kind == 6:
            nruns, _, _ = struct.unpack("<IIQ", f.read(16))
            runs = [struct.unpack("<QQ", f.read(16)) for _ in range(nruns)]
            data = off + 32 + 16 * nruns
            data += (PAGE - data % PAGE) % PAGE
            for start, npages in runs:
                if start <= addr < start + npages * PAGE:
                    at = data + addr - start + PAGE // 2
                    f.seek(at)
                    byte = f.read(1)[0]
                    f.seek(at)
                    f.write(bytes([byte ^ 0x5A]))
                    print(at)
                    sys.exit(0)
                data += npages * PAGE
        off += 16 + length
sys.exit(1)
