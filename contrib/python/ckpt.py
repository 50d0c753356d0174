"""ckpt.h(3) for Python: talk to the ckpt-inject helper on $CKPT_API.

checkpoint() -> (restarted, gen); delay() / allow() -> depth; status() -> dict.
Not under ckpt-inject, each raises NotAvailable (an OSError, errno ENOSYS)."""
import errno, os, socket, time

class NotAvailable(OSError):
    def __init__(self, why):
        super().__init__(errno.ENOSYS, why)

def _ask(req):
    path = os.environ.get("CKPT_API")
    if not path:
        raise NotAvailable("not under ckpt-inject (no CKPT_API)")
    # One connection a request: none is open when a checkpoint comes.
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(req.encode() + b"\n")
            ans = s.makefile().readline().rstrip("\n")
    except OSError as e:
        raise NotAvailable("no ckpt-inject helper answers on CKPT_API: %s" % e)
    if not ans.startswith("OK"):
        raise OSError(errno.EIO, ans[4:] if ans.startswith("ERR ") else ans)
    return ans[3:]

def checkpoint():
    """Checkpoint now; (False, gen) once written, (True, gen) when restarted from it."""
    req = "RESULT " + _ask("CHECKPOINT")
    while (ans := _ask(req)) == "WAIT":
        time.sleep(0.02)
    return ans.startswith("RESTARTED"), int(ans.split()[-1])

def delay():
    return int(_ask("DELAY").split()[0])

def allow():
    return int(_ask("ALLOW"))

def status():
    return {k: int(v) for k, v in (w.split("=") for w in _ask("STATUS").split())}
