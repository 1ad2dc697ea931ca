"""Start cunicorn the way systemd's socket activation does, for tests/cli:

    python sd_launcher.py PORT_FILE -- cunicorn args...

binds 127.0.0.1:0, writes the port to PORT_FILE, puts the listening socket on
fd 3, sets LISTEN_FDS=1 and LISTEN_PID to this pid (exec keeps it) and execs
``python -m cunicorn args...``.  NOTIFY_SOCKET passes through from the caller.
"""

import os
import socket
import sys


def main():
    port_file = sys.argv[1]
    args = sys.argv[sys.argv.index("--") + 1 :]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    with open(port_file, "w") as f:
        f.write(str(sock.getsockname()[1]))
    if sock.fileno() != 3:
        os.dup2(sock.fileno(), 3)
        sock.close()
    os.set_inheritable(3, True)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.execv(sys.executable, [sys.executable, "-m", "cunicorn", *args])


if __name__ == "__main__":
    main()
