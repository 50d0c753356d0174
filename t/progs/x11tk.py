"""x11tk: a small Tk program, a label and a button, for t/0930-x11.bats.

usage: /usr/bin/python3 x11tk.py DIR

Shows the label "clicked 0" above the button "press" at +0+120 of the
display in $DISPLAY.  Each press of the button counts, sets the label to
"clicked N" and prints "label: clicked N" (the label's text read back).
Once mapped it prints "ready button X Y", the root coordinates of a
point inside the button.  It looks for DIR/go every 50 ms (a Tk timer):
the file holds the number of presses the test made; the program then
prints "restored: yes" (this process started after it printed "ready":
a restored one is a new process) or "restored: no", and "tk: ok clicks
N" and exits 0 if it counted that many presses and the label says so,
else one line on stderr and exit 1.
"""
import os
import sys
import tkinter


def start_time():
    with open("/proc/self/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def main():
    d = sys.argv[1]
    t0 = start_time()
    root = tkinter.Tk(className="x11tk")
    root.geometry("+0+120")
    n = [0]
    lab = tkinter.Label(root, text="clicked 0", width=12)

    def press():
        n[0] += 1
        lab.config(text="clicked %d" % n[0])
        print("label:", lab.cget("text"), flush=True)

    b = tkinter.Button(root, text="press", command=press)
    lab.pack()
    b.pack()

    def look():
        try:
            with open(os.path.join(d, "go")) as f:
                want = int(f.read())
        except (OSError, ValueError):
            root.after(50, look)
            return
        print("restored:", "yes" if start_time() != t0 else "no", flush=True)
        if n[0] != want or lab.cget("text") != "clicked %d" % want:
            print("x11tk: %d presses, label %r; %d expected" % (n[0], lab.cget("text"), want),
                  file=sys.stderr, flush=True)
            sys.exit(1)
        print("tk: ok clicks %d" % n[0], flush=True)
        root.destroy()

    root.update()
    print("ready button %d %d" % (b.winfo_rootx() + b.winfo_width() // 2,
                                  b.winfo_rooty() + b.winfo_height() // 2), flush=True)
    root.after(50, look)
    root.mainloop()


main()
