"""A real nginx (Debian's package) running the shipped deploy/nginx configuration for tests.

The shipped files are used as they are, with only the site-specific values replaced: the listen
ports (free ports on 127.0.0.1), the upstream hubs, the certificate and the log paths. nginx runs
in the foreground (``daemon off``) as a child of the test, with its pid file and logs in a
temporary directory, and is stopped with SIGQUIT (graceful) then SIGKILL.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.support.hub import ROOT
from tests.support.ports import free_port
from tests.support.waits import WAIT, wait_until

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SHIPPED = ROOT / "deploy" / "nginx"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (openssl, from Debian)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=WAIT * 3,
    )  # fmt: skip
    return cert, key


def render(upstreams: list[str], http_port: int, https_port: int, directory: Path) -> Path:
    """Write nginx.conf and mtbridge.conf into ``directory`` with the local values; return nginx.conf."""
    cert, key = self_signed(directory)
    site = (SHIPPED / "mtbridge.conf").read_text()
    servers = "\n".join(f"    server {u} max_fails=1 fail_timeout=1s;" for u in upstreams)
    site, n = re.subn(r"(?m)^\s*server 10\.0\.0\.\d+:8765[^;]*;\n", "", site)
    assert n > 0, "the shipped upstream block changed: update tests/support/nginx.py"
    site = site.replace("    keepalive 32;", servers + "\n    keepalive 32;")
    site = re.sub(r"(?m)^\s*listen \[::\]:\d+( ssl)?;\n", "", site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    site = site.replace("/etc/ssl/mtbridge/fullchain.pem", str(cert))
    site = site.replace("/etc/ssl/mtbridge/privkey.pem", str(key))
    site = site.replace("/var/log/nginx/mtbridge.access.log", str(directory / "access.log"))
    (directory / "mtbridge.conf").write_text(site)
    main = (SHIPPED / "nginx.conf").read_text()
    main = main.replace("/etc/nginx/conf.d/mtbridge.conf", str(directory / "mtbridge.conf"))
    main = main.replace("worker_processes auto;", "worker_processes 1;")
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        main = main.replace("http {\n", f"http {{\n    {temp}_temp_path {directory / temp};\n", 1)
    conf = directory / "nginx.conf"
    conf.write_text(main)
    return conf


class Nginx:
    def __init__(self, directory: Path, upstreams: list[str]) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.https_port = free_port()
        self.conf = render(upstreams, self.http_port, self.https_port, self.dir)
        self.cert = self.dir / "cert.pem"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}/ws"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def _args(self) -> list[str]:
        directives = f"daemon off; pid {self.dir / 'nginx.pid'}; error_log {self.dir / 'error.log'} info;"
        return [NGINX, "-p", str(self.dir), "-c", str(self.conf), "-g", directives]

    def check(self) -> None:
        """``nginx -t`` on the rendered configuration."""
        out = subprocess.run([*self._args(), "-t"], capture_output=True, text=True, timeout=WAIT * 3)
        assert out.returncode == 0, out.stderr

    def start(self) -> Nginx:
        logf = open(self.dir / "stderr.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self._args(), stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.dir / 'error.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                    return True
            except OSError:
                return False

        try:
            wait_until(listening, "nginx to listen", timeout=WAIT * 3)
        except AssertionError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(WAIT)
