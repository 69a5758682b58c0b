#!/usr/bin/env python3
"""Deliberately broken WebSocket peers, to show that the harness can say FAILED (and survives).

    bad_peer.py server --port PORT --mode lenient|silent|crash|slowclose
    bad_peer.py client --url ws://127.0.0.1:PORT --agent NAME --mode lenient|silent|exit-after-3

lenient    echoes every data frame as it came (no RSV / opcode / UTF-8 / fragmentation checks),
           answers pings, echoes close frames. Non-conforming in sections 3, 4, 5, 6, 7.
silent     completes the opening handshake, then never sends anything nor closes.
crash      the server process exits as soon as it receives its first frame.
slowclose  conforming on close, but never closes TCP itself (server must drop TCP).
nohandshake  the server accepts TCP connections and never answers the opening handshake.
exit-after-3  the client runs cases 1-3, then exits (the harness must restart it).
deflate-verbatim  (server) accepts permessage-deflate, echoing the server_* parameters of the first
           offer, (client) offers 'permessage-deflate; client_max_window_bits'; then echoes every
           frame as it came (compressed payload and RSV1 untouched, never inflating). Passes where
           both directions use the same parameters; must fail where they differ (13.2, 13.3).
deflate-silent  (server) accepts permessage-deflate like deflate-verbatim, then never sends anything.
deflate-sloppy  (server) answers every offer with 'permessage-deflate; server_max_window_bits=10'
           whatever was offered, then echoes like deflate-verbatim.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsharness import frames as F  # noqa: E402


def read_head(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def serve_ws(sock, rest, mode, is_server):
    reader = F.FrameReader()
    reader.feed(rest)
    key = None if is_server else b"\x01\x02\x03\x04"
    if mode in ("silent", "deflate-silent"):
        sock.settimeout(30)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
        return
    sock.settimeout(30)
    while True:
        try:
            fr = reader.next_frame()
        except ValueError:
            return
        if fr is None:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            reader.feed(data)
            continue
        if mode == "crash":
            os._exit(3)
        if fr.opcode == F.OP_PING:
            sock.sendall(F.encode_frame(F.OP_PONG, fr.payload, mask_key=key))
        elif fr.opcode == F.OP_PONG:
            pass
        elif fr.opcode == F.OP_CLOSE:
            sock.sendall(F.encode_frame(F.OP_CLOSE, fr.payload[:2], mask_key=key))
            if mode == "slowclose":
                time.sleep(5)
            return
        else:
            sock.sendall(F.encode_frame(fr.opcode, fr.payload, fin=fr.fin, rsv=fr.rsv, mask_key=key))


def server(port, mode):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)

    def handle(conn):
        try:
            if mode == "nohandshake":
                time.sleep(60)
                return
            head, rest = read_head(conn)
            req = F.parse_head(head)
            answer = None
            offer = req.headers.get("sec-websocket-extensions", "")
            if mode == "deflate-sloppy" and "permessage-deflate" in offer:
                answer = "permessage-deflate; server_max_window_bits=10"
            elif mode in ("deflate-verbatim", "deflate-silent") and "permessage-deflate" in offer:
                first = offer.split(",")[0]
                answer = "; ".join(["permessage-deflate"] + [p.strip() for p in first.split(";")[1:]
                                                           if p.strip().startswith("server_")])
            resp, err = F.server_response(req, answer)
            conn.sendall(resp)
            if not err:
                serve_ws(conn, rest, mode, True)
        except OSError:
            pass
        finally:
            conn.close()
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def client_connect(url, path, mode):
    u = urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    extra = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"} \
        if mode.startswith("deflate") else None
    req, key = F.client_request(u.hostname, u.port, path, extra)
    sock.sendall(req)
    head, rest = read_head(sock)
    return sock, rest


def client(url, agent, mode):
    sock, rest = client_connect(url, "/getCaseCount", mode)
    reader = F.FrameReader()
    reader.feed(rest)
    count = None
    while count is None:
        fr = reader.next_frame()
        if fr is None:
            reader.feed(sock.recv(65536))
            continue
        if fr.opcode == F.OP_TEXT:
            count = int(fr.payload)
    sock.close()
    for n in range(1, count + 1):
        if mode == "exit-after-3" and n == 4:
            sys.exit(1)
        try:
            s, rest = client_connect(url, f"/runCase?case={n}&agent={agent}", mode)
            serve_ws(s, rest, mode if mode in ("silent", "deflate-verbatim") else "lenient", False)
            s.close()
        except OSError:
            pass
    try:
        s, _ = client_connect(url, f"/updateReports?agent={agent}", mode)
        s.close()
    except OSError:
        pass


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["server", "client"])
    ap.add_argument("--port", type=int)
    ap.add_argument("--url")
    ap.add_argument("--agent", default="bad-peer")
    ap.add_argument("--mode", default="lenient")
    a = ap.parse_args()
    if a.role == "server":
        server(a.port, a.mode)
    else:
        client(a.url, a.agent, a.mode)
