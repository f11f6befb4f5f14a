"""nginx from Debian as a TLS-terminating gRPC proxy in front of the Temporal dev server.

Run as a child process with its own config, pid, log and temp paths under a test directory,
on free loopback ports, and stopped by the pid we started (never by name).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# Long polls (the worker's) last about a minute: the proxy must not cut them first.
CONFIG = """\
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    client_max_body_size 0;
    grpc_read_timeout 300s;
    grpc_send_timeout 300s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {server_cert};
    ssl_certificate_key {server_key};

    # mTLS: a client certificate signed by the test CA is required
    server {{
        listen 127.0.0.1:{mtls_port} ssl http2;
        ssl_client_certificate {client_ca};
        ssl_verify_client on;
        location / {{ grpc_pass grpc://{upstream}; }}
    }}

    # Temporal Cloud style: server TLS only, an API key as the bearer token
    server {{
        listen 127.0.0.1:{api_key_port} ssl http2;
        location / {{
            if ($http_authorization != "Bearer {api_key}") {{ return 401; }}
            grpc_pass grpc://{upstream};
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found:
        return found
    message = "nginx is missing: `make test` installs the Debian package nginx-light"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class GrpcProxy:
    process: subprocess.Popen[bytes]
    directory: Path
    mtls_address: str
    api_key_address: str
    api_key: str

    def log(self) -> str:
        try:
            return (self.directory / "error.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish open streams quickly
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_proxy(
    directory: Path,
    *,
    upstream: str,
    server_cert: Path,
    server_key: Path,
    client_ca: Path,
    api_key: str,
) -> GrpcProxy:
    binary = nginx_binary()
    directory.mkdir(parents=True, exist_ok=True)
    mtls_port, api_key_port = free_port(), free_port()
    conf = directory / "nginx.conf"
    conf.write_text(
        CONFIG.format(
            dir=directory,
            server_cert=server_cert,
            server_key=server_key,
            client_ca=client_ca,
            upstream=upstream,
            mtls_port=mtls_port,
            api_key_port=api_key_port,
            api_key=api_key,
        )
    )
    # -e: the startup error log goes here too, not to /var/log/nginx
    argv = [binary, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    check = subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        pytest.fail(f"nginx rejected the test config:\n{check.stderr}")
    process = subprocess.Popen(  # noqa: S603 - argv built here
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    proxy = GrpcProxy(
        process,
        directory,
        f"127.0.0.1:{mtls_port}",
        f"127.0.0.1:{api_key_port}",
        api_key,
    )
    deadline = time.monotonic() + 10
    while not (_answers(mtls_port) and _answers(api_key_port)):
        if process.poll() is not None or time.monotonic() > deadline:
            proxy.stop()
            pytest.fail(f"nginx did not start:\n{proxy.log()}")
        time.sleep(0.05)
    return proxy
