#!/usr/bin/env python3
"""forge.py IMG uid UID | forge.py IMG parent PATH | forge.py IMG lockkind N |
forge.py IMG nsown N | forge.py IMG flightkind N |
forge.py IMG flightmark N | forge.py IMG cpu W:B[,W:B...] |
forge.py IMG bootid HEX |
forge.py IMG uringflags N: rewrite, in place, a
field of the uncompressed image IMG as anyone who can write the file can,
and fix the record's checksum, so that only the file's owner tells who
wrote it.

uid UID      every PROC record (type 1) says the process belonged to UID
             (struct img_proc: pid, ppid, pgid, sid, then uid).
parent PATH  the PARENT record (type 15) names PATH, padded with slashes
             after its first component to the old path's length (no
             offset of the stream moves, so page data stays aligned);
             PATH must be no longer than the old path.
lockkind N   the first lock of every regular file's FILE record (type 4)
             that has locks is of kind N.
nsown N      every NS record (type 19) says its own namespaces are the bits
             of N (struct img_ns: eight u64 inodes, then own).
flightkind N every FILE record of a file in flight (a negative fd) is of
             kind N.
flightmark N the first mark of a file in flight in every unix FILE record
             (kind 11) whose messages carry files (flag 32) is N.
cpu W:B,...  every CPU record (type 24) has bit B of its u32 word W set
             (struct img_cpu: eight CPUID words, then flags as word 8).
bootid HEX   every TIMENS record (type 26) says the boot that wrote it was
             HEX (16 bytes at offset 48), as if dumped on another machine.
uringflags N every io_uring FILE record (kind 24) asks for setup flags N
             (struct img_uring: sq_entries, cq_entries, then flags).

See ckpt-image(5): a 192-byte header, then records of a 16-byte header
(type, crc, payload length); the crc is CRC-32C of that header with crc 0
and the payload (page data excepted, which no record forged here has)."""
import os
import struct
import sys

POLY = 0x82F63B78
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (POLY if c & 1 else 0)
    TABLE.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ TABLE[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def pad_path(new, old_len):
    if len(new) > old_len:
        sys.exit("forge.py: %r is longer than the old path (%d)" % (new, old_len))
    cut = new.index(b"/", 1) if new.count(b"/") > 1 else 0
    return new[:cut] + b"/" * (old_len - len(new)) + new[cut:]


def main():
    path, what, value = sys.argv[1], sys.argv[2], sys.argv[3]
    size = os.path.getsize(path)
    done = 0
    with open(path, "r+b") as f:
        off = 192
        while off + 16 <= size:
            f.seek(off)
            kind, _, length = struct.unpack("<IIQ", f.read(16))
            if kind in (5, 6, 7):  # DATA: the metadata of a process ends
                if kind == 7:
                    break
                off += 16 + length
                continue
            payload = None
            if what == "uid" and kind == 1:
                payload = bytearray(f.read(length))
                struct.pack_into("<I", payload, 16, int(value))
            elif what == "parent" and kind == 15:
                payload = bytearray(f.read(length))
                plen = struct.unpack_from("<I", payload, 68)[0]
                new = pad_path(value.encode(), plen)
                payload[72:72 + plen] = new
            elif what == "lockkind" and kind == 4:
                payload = bytearray(f.read(length))
                fkind, plen, elen = (struct.unpack_from("<I", payload, o)[0] for o in (4, 64, 68))
                if fkind == 1 and elen:
                    struct.pack_into("<I", payload, 80 + plen + 8, int(value))
                else:
                    payload = None
            elif what == "flightkind" and kind == 4:
                payload = bytearray(f.read(length))
                if struct.unpack_from("<i", payload, 0)[0] < 0:
                    struct.pack_into("<I", payload, 4, int(value))
                else:
                    payload = None
            elif what == "flightmark" and kind == 4:
                payload = bytearray(f.read(length))
                fkind, plen, elen = (struct.unpack_from("<I", payload, o)[0] for o in (4, 64, 68))
                x = 80 + plen
                # struct img_unix: id, type, end, shutdown, sndbuf, rcvbuf,
                # nmsg, data_len, own_len, peer_len, flags
                if fkind == 11 and elen >= 40 and struct.unpack_from("<H", payload, x + 38)[0] & 32:
                    nmsg = struct.unpack_from("<I", payload, x + 28)[0]
                    q = x + 40 + payload[x + 36] + payload[x + 37]
                    payload_ok = False
                    for _ in range(nmsg):
                        ln, nf = struct.unpack_from("<II", payload, q)
                        if nf:
                            struct.pack_into("<i", payload, q + 8, int(value))
                            payload_ok = True
                            break
                        q += 8 + ln
                    if not payload_ok:
                        payload = None
                else:
                    payload = None
            elif what == "uringflags" and kind == 4:
                payload = bytearray(f.read(length))
                fkind, plen = (struct.unpack_from("<I", payload, o)[0] for o in (4, 64))
                if fkind == 24:
                    struct.pack_into("<I", payload, 80 + plen + 8, int(value, 0))
                else:
                    payload = None
            elif what == "nsown" and kind == 19:
                payload = bytearray(f.read(length))
                struct.pack_into("<I", payload, 64, int(value, 0))
            elif what == "bootid" and kind == 26:
                payload = bytearray(f.read(length))
                payload[48:64] = bytes.fromhex(value)
            elif what == "cpu" and kind == 24:
                payload = bytearray(f.read(length))
                for wb in value.split(","):
                    w, b = (int(x) for x in wb.split(":"))
                    v = struct.unpack_from("<I", payload, 4 * w)[0]
                    struct.pack_into("<I", payload, 4 * w, v | 1 << b)
            if payload is not None:
                head = struct.pack("<IIQ", kind, 0, length)
                f.seek(off)
                f.write(struct.pack("<IIQ", kind, crc32c(head + payload), length))
                f.write(payload)
                done += 1
            off += 16 + length
    if not done:
        sys.exit("forge.py: no record to rewrite in %s" % path)


main()
