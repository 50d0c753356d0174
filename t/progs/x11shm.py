"""x11shm: an X client that draws through MIT-SHM (System V shared memory
between it and the X server), for t/0930-x11.bats.

usage: /usr/bin/python3 x11shm.py DIR

On the display in $DISPLAY it maps a 64x64 window at +150+140 and makes
two System V segments, attached by the server too (XShmAttach), then
removed (IPC_RMID: they live on while attached, as most clients leave
them): P, which the client fills and the server reads (XShmPutImage),
and G, which the server fills and the client reads (XShmGetImage).  Each
drawing fills P with the pattern of a count K (0 at first, one more at
each mouse button press on the window), puts it on the window, gets the
window back into G and checks that G holds the pattern of K: both
segments are shared with the server as they were, not copies of them.
It prints "ready window X Y" (a point inside the window) once it has
drawn, and "shm: put K ok" after each press; a drawing that does not
come back is one line on stderr ("x11shm: ...") and counts as a failure.

It looks for DIR/go every 50 ms, which holds the number of presses the
test made; it then prints "restored: yes" (this process started after
"ready": a restored one is a new process) or "restored: no", and "shm:
ok presses N" and exits 0 if it counted that many and no drawing failed,
else exit 1.  Without MIT-SHM on the server: "no MIT-SHM" and exit 77.
"""
import ctypes
import os
import select
import sys

X = ctypes.CDLL("libX11.so.6")
XEXT = ctypes.CDLL("libXext.so.6")
LIBC = ctypes.CDLL(None, use_errno=True)

W = H = 64
EXPOSE, BUTTON_PRESS = 12, 4


class XImage(ctypes.Structure):
    # The leading fields of Xlib's XImage, up to bytes_per_line.
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.c_void_p), ("byte_order", ctypes.c_int),
                ("bitmap_unit", ctypes.c_int), ("bitmap_bit_order", ctypes.c_int),
                ("bitmap_pad", ctypes.c_int), ("depth", ctypes.c_int),
                ("bytes_per_line", ctypes.c_int), ("bits_per_pixel", ctypes.c_int)]


class ShmInfo(ctypes.Structure):
    _fields_ = [("shmseg", ctypes.c_ulong), ("shmid", ctypes.c_int), ("shmaddr", ctypes.c_void_p),
                ("readOnly", ctypes.c_int)]


X.XOpenDisplay.restype = ctypes.c_void_p
X.XOpenDisplay.argtypes = [ctypes.c_char_p]
for f in ("XDefaultScreen", "XConnectionNumber", "XPending", "XFlush"):
    getattr(X, f).argtypes = [ctypes.c_void_p]
X.XRootWindow.restype = ctypes.c_ulong
X.XRootWindow.argtypes = [ctypes.c_void_p, ctypes.c_int]
X.XDefaultVisual.restype = ctypes.c_void_p
X.XDefaultVisual.argtypes = [ctypes.c_void_p, ctypes.c_int]
X.XDefaultDepth.argtypes = [ctypes.c_void_p, ctypes.c_int]
X.XDefaultGC.restype = ctypes.c_void_p
X.XDefaultGC.argtypes = [ctypes.c_void_p, ctypes.c_int]
X.XCreateSimpleWindow.restype = ctypes.c_ulong
X.XCreateSimpleWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong] + [ctypes.c_int] * 2 + \
    [ctypes.c_uint] * 3 + [ctypes.c_ulong] * 2
X.XSelectInput.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_long]
X.XMapWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
X.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
X.XNextEvent.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
XEXT.XShmQueryExtension.argtypes = [ctypes.c_void_p]
XEXT.XShmCreateImage.restype = ctypes.POINTER(XImage)
XEXT.XShmCreateImage.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_char_p, ctypes.POINTER(ShmInfo), ctypes.c_uint,
                                 ctypes.c_uint]
XEXT.XShmAttach.argtypes = [ctypes.c_void_p, ctypes.POINTER(ShmInfo)]
XEXT.XShmPutImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p,
                              ctypes.POINTER(XImage)] + [ctypes.c_int] * 4 + \
    [ctypes.c_uint] * 2 + [ctypes.c_int]
XEXT.XShmGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(XImage),
                              ctypes.c_int, ctypes.c_int, ctypes.c_ulong]
LIBC.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
LIBC.shmat.restype = ctypes.c_void_p
LIBC.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
LIBC.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]


def start_time():
    with open("/proc/self/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def pattern(k, size):
    """The bytes of drawing K: 32-bit pixels, the top byte (no colour) 0."""
    px = bytearray(size)
    for i in range(0, size, 4):
        v = ((i // 4) * 2654435761 + k * 40503) & 0xffffff
        px[i:i + 3] = v.to_bytes(3, "little")
    return bytes(px)


def colour(b):
    """B without the unused top byte of each pixel."""
    b = bytearray(b)
    b[3::4] = bytes(len(b) // 4)
    return bytes(b)


def main():
    d = sys.argv[1]
    t0 = start_time()
    dpy = X.XOpenDisplay(None)
    if not dpy:
        sys.exit("x11shm: cannot open display %s" % os.environ.get("DISPLAY"))
    if not XEXT.XShmQueryExtension(dpy):
        print("no MIT-SHM", flush=True)
        sys.exit(77)
    scr = X.XDefaultScreen(dpy)
    vis, depth, gc = X.XDefaultVisual(dpy, scr), X.XDefaultDepth(dpy, scr), X.XDefaultGC(dpy, scr)
    win = X.XCreateSimpleWindow(dpy, X.XRootWindow(dpy, scr), 150, 140, W, H, 0, 0, 0)
    X.XSelectInput(dpy, win, (1 << 15) | (1 << 2))
    imgs = []
    for _ in range(2):
        info = ShmInfo()
        img = XEXT.XShmCreateImage(dpy, vis, depth, 2, None, ctypes.byref(info), W, H)
        if not img or img.contents.bits_per_pixel != 32:
            sys.exit("x11shm: no 32-bit ZPixmap image")
        size = img.contents.bytes_per_line * H
        info.shmid = LIBC.shmget(0, size, 0o1000 | 0o600)
        if info.shmid < 0:
            sys.exit("x11shm: shmget: " + os.strerror(ctypes.get_errno()))
        info.shmaddr = LIBC.shmat(info.shmid, None, 0)
        img.contents.data = info.shmaddr
        XEXT.XShmAttach(dpy, ctypes.byref(info))
        X.XSync(dpy, 0)
        LIBC.shmctl(info.shmid, 0, None)
        imgs.append((img, info, size))
    (put, pinfo, size), (get, ginfo, _) = imgs
    state = {"k": 0, "failed": 0}

    def draw():
        want = pattern(state["k"], size)
        ctypes.memmove(pinfo.shmaddr, want, size)
        XEXT.XShmPutImage(dpy, win, gc, put, 0, 0, 0, 0, W, H, 0)
        ctypes.memset(ginfo.shmaddr, 0, size)
        ok = XEXT.XShmGetImage(dpy, win, get, 0, 0, 0xffffffff)
        X.XSync(dpy, 0)
        if not ok or colour(ctypes.string_at(ginfo.shmaddr, size)) != want:
            print("x11shm: drawing %d did not come back from the server" % state["k"],
                  file=sys.stderr, flush=True)
            state["failed"] += 1
            return False
        return True

    X.XMapWindow(dpy, win)
    ev = ctypes.create_string_buffer(192)
    fd = X.XConnectionNumber(dpy)
    ready = False
    while True:
        X.XFlush(dpy)
        while X.XPending(dpy):
            X.XNextEvent(dpy, ev)
            kind = ctypes.c_int.from_buffer(ev).value
            if kind == EXPOSE:
                draw()
                if not ready:
                    print("ready window %d %d" % (150 + W // 2, 140 + H // 2), flush=True)
                    ready = True
            elif kind == BUTTON_PRESS:
                state["k"] += 1
                if draw():
                    print("shm: put %d ok" % state["k"], flush=True)
        select.select([fd], [], [], 0.05)
        try:
            with open(os.path.join(d, "go")) as f:
                want = int(f.read())
        except (OSError, ValueError):
            continue
        print("restored:", "yes" if start_time() != t0 else "no", flush=True)
        if state["k"] != want or state["failed"]:
            print("x11shm: %d presses, %d drawings failed; %d presses expected" %
                  (state["k"], state["failed"], want), file=sys.stderr, flush=True)
            sys.exit(1)
        print("shm: ok presses %d" % state["k"], flush=True)
        sys.exit(0)


main()
