"""FTP control-channel analyser: Zeek's ftp.log, one row per logged command with its reply.

FTP clients may pipeline commands and servers answer with multi-line replies, so a reply is matched
to a pending command the way Zeek does it: by a score (is the code a legal answer to that command,
does the text mention the command or its argument), oldest command winning ties. Only the commands
that matter for file movement and data channels are logged (Zeek's ``logged_commands``); passwords
are logged only for anonymous-style users, since anything else would put credentials in the lake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa

from mamori.flows.analyzers.base import Analysis, register
from mamori.flows.conversation import Conversation, segment_rows
from mamori.schema.ftp import SCHEMA

LOGGED_COMMANDS = {"APPE", "DELE", "RETR", "STOR", "STOU", "ACCT", "PORT", "PASV", "EPRT", "EPSV"}
GUEST_IDS = {"anonymous", "ftp", "ftpuser", "guest"}
_FILE_CMDS = {
    "APPE",
    "CWD",
    "DELE",
    "MKD",
    "RETR",
    "RMD",
    "RNFR",
    "RNTO",
    "STOR",
    "STOU",
    "REST",
    "SIZE",
    "MDTM",
}
_T = [110, 125, 150, 226, 250, 421, 425, 426, 451, 551, 552, 532, 450, 452, 553, 500, 501, 530, 550]
_LIST = [125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 502, 530, 550]
# Which reply codes answer which command (RFC 959 and extensions), as Zeek scores them.
_REPLIES: dict[str, set[int]] = {
    "<init>": {120, 220, 421, 0}, "USER": {230, 331, 332, 421, 530, 500, 501},
    "PASS": {230, 202, 332, 421, 530, 500, 501, 503}, "ACCT": {230, 202, 421, 530, 500, 501, 503},
    "CWD": {250, 421, 500, 501, 502, 530, 550}, "CDUP": {200, 250, 421, 500, 501, 502, 530, 550},
    "SMNT": {202, 250, 421, 500, 501, 502, 530, 550}, "REIN": {120, 220, 421, 500, 502},
    "QUIT": {221, 500, 0}, "PORT": {200, 421, 500, 501, 530}, "PASV": {227, 421, 500, 501, 502, 530},
    "MODE": {200, 421, 500, 501, 502, 504, 530}, "TYPE": {200, 421, 500, 501, 504, 530},
    "STRU": {200, 421, 500, 501, 504, 530}, "ALLO": {200, 202, 421, 500, 501, 504, 530},
    "REST": {200, 350, 421, 500, 501, 502, 530}, "STOR": set(_T), "STOU": set(_T),
    "RETR": {110, 125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 530, 550},
    "LIST": set(_LIST), "NLST": set(_LIST), "APPE": {*_T, 502} - {110},
    "RNFR": {350, 421, 450, 550, 500, 501, 502, 530}, "RNTO": {250, 421, 532, 553, 500, 501, 502, 503, 530},
    "DELE": {250, 421, 450, 550, 500, 501, 502, 530}, "RMD": {250, 421, 500, 501, 502, 530, 550},
    "MKD": {257, 421, 500, 501, 502, 530, 550}, "PWD": {257, 421, 500, 501, 502, 550},
    "ABOR": {225, 226, 421, 500, 501, 502}, "SYST": {215, 421, 500, 501, 502, 530},
    "STAT": {211, 212, 213, 421, 450, 500, 501, 502, 530}, "HELP": {200, 211, 214, 421, 500, 501, 502},
    "SITE": {200, 202, 214, 500, 501, 502, 530}, "NOOP": {200, 421, 500}, "LPRT": {500, 501, 521},
    "FEAT": {211, 500, 502}, "OPTS": {200, 451, 501}, "EPSV": {229, 500, 501}, "EPRT": {200, 500, 501, 522},
    "SIZE": {213, 500, 501, 550}, "MDTM": {213, 500, 501, 550}, "MLST": {150, 226, 250, 500, 501, 550},
    "MLSD": {150, 226, 250, 500, 501, 550}, "CLNT": {200, 500}, "MACB": {200, 500, 550}, "<missing>": {0},
}  # fmt: skip
_DIR_CMDS = {("CWD", 250), ("CDUP", 200), ("CDUP", 250), ("PWD", 257), ("XPWD", 257)}
_WORD = re.compile(rb"[A-Za-z]+")
_PASV = re.compile(rb"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)")
_EPSV = re.compile(rb"\((.)\1\1(\d+)\1\)")
_CONT_OK = re.compile(r"^[1-9][0-9]{2} [\x20-\x7e]{10}")


@dataclass(slots=True)
class _Cmd:
    ts: float
    cmd: str
    arg: str
    seq: int
    cwd_consumed: bool = False


_UP = re.compile(r"[^/]+/\.\./")
_SLASHES = re.compile(r"/+")
_UP_AT_END = re.compile(r"[^/]+/\.\.$")
_NUMBER = re.compile(r"\d+")


def _host_port(m: re.Match[bytes]) -> tuple[str, int] | None:
    """h1,h2,h3,h4,p1,p2 of PORT and 227 as (address, port), or None when a number is over 255:
    Zeek's parse_ftp_port marks such a channel invalid and logs none."""
    n = [int(x) for x in m.groups()]
    if max(n) > 255:
        return None
    return ".".join(map(str, n[:4])), n[4] * 256 + n[5]


def _valid_port(text: str | bytes) -> int | None:
    """An EPRT or EPSV port, or None outside 0-65535 (Zeek's parse_eftp_port: invalid)."""
    port = int(text)
    return port if port <= 65535 else None


def _compress(path: str) -> str:
    """Zeek's compress_path: drop ``dir/..`` pairs and duplicate slashes (``./`` is kept)."""
    if "/.." not in path and "//" not in path:
        return path  # nothing any of the rewrites below could match
    prev = None
    while prev != path:
        prev = path
        path = _UP.sub("", path, count=1)
        path = _SLASHES.sub("/", path)
    return _UP_AT_END.sub("", path)


def _build_path(cwd: str, path: str) -> str:
    return _compress(path if path.startswith("/") else f"{cwd}/{path}")


def _uri_host(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


@dataclass(slots=True)
class _State:
    conv: Conversation
    started: bool = False
    ts: float = 0.0
    seq: int = 0
    pending: dict[int, _Cmd] = field(default_factory=dict)
    cmdarg: _Cmd | None = None
    user: str | None = None
    password: str | None = None
    reply_code: int | None = None
    reply_msg: str | None = None
    file_size: int | None = None
    channel: tuple[bool, str, str, int] | None = None
    cwd: str = "."
    pending_reply: int = 0
    confirmed: bool = False
    records: list[dict[str, object]] = field(default_factory=list)
    ids: dict[str, object] | None = None  # the conversation's id fields, made once

    def session(self) -> None:
        if not self.started:
            self.started = True
            self.seq += 1
            self.pending[self.seq] = _Cmd(self.ts, "<init>", "", self.seq)

    def best(self, code: int, msg: str) -> _Cmd:
        best: _Cmd | None = None
        best_score = -1
        for seq, c in self.pending.items():
            score = 100 if code == 500 or code in _REPLIES.get(c.cmd, ()) else 0
            score += 20 if c.cmd in msg else 0
            score += 10 if c.arg in msg else 0
            if score > best_score or (score == best_score and best is not None and best.seq > seq):
                best, best_score = c, score
        return best or _Cmd(self.ts, "<missing>", "", 0)


def _message(st: _State) -> None:
    """Zeek's ftp_message: log the current command if it is a logged one, then reset per-file state."""
    c = st.cmdarg
    if c is None:
        return
    arg = c.arg
    if c.cmd in _FILE_CMDS and arg:
        path = _build_path(st.cwd, arg)
        arg = f"ftp://{_uri_host(st.conv.resp_h)}{path if path.startswith('/') else '/' + path}"
    hide = (st.user or "").lower() not in GUEST_IDS
    if c.cmd == "PASS" and hide:
        arg = "<hidden>"
    if c.cmd in LOGGED_COMMANDS:
        ch = st.channel
        ids = st.ids
        if ids is None:
            ids = st.ids = st.conv.id_fields()
        st.records.append(
            {
                "ts": c.ts,
                **ids,
                "user": st.user if st.user is not None else "<unknown>",
                "password": ("<hidden>" if hide else st.password)
                if st.password is not None
                else None,
                "command": c.cmd,
                "arg": arg or None,
                "mime_type": None,
                "file_size": st.file_size,
                "reply_code": st.reply_code,
                "reply_msg": st.reply_msg,
                "data_channel_passive": ch[0] if ch else None,
                "data_channel_orig_h": ch[1] if ch else None,
                "data_channel_resp_h": ch[2] if ch else None,
                "data_channel_resp_p": ch[3] if ch else None,
                "fuid": None,
            }
        )
    st.file_size = None
    st.channel = None


def _request(st: _State, line: bytes) -> None:
    text = line.lstrip(b" \t")
    word = _WORD.match(text)
    if not word or (word.end() < len(text) and text[word.end()] not in b" \t"):
        return  # not an FTP command: Zeek ignores the line
    cmd = word.group().decode().upper()
    arg = text[word.end() :].lstrip(b" \t").decode("latin-1")
    st.confirmed = True
    if st.cmdarg is not None and st.reply_code is not None and st.cmdarg.seq in st.pending:
        del st.pending[st.cmdarg.seq]
        _message(st)
    if not st.started:
        st.session()
    if len(st.pending) < 20:
        st.seq += 1
        st.pending[st.seq] = _Cmd(st.ts, cmd, arg, st.seq)
    if cmd == "USER":
        st.user = arg[:128]
    elif cmd == "PASS":
        st.password = arg[:128]
    elif cmd == "PORT":
        m = _PASV.search(arg.encode("latin-1"))
        if m and (hp := _host_port(m)):
            st.channel = (False, st.conv.resp_h, *hp)
    elif cmd == "EPRT" and len(arg) > 1:
        parts = arg.split(arg[0])
        if len(parts) >= 4 and parts[3].isdigit() and (port := _valid_port(parts[3])) is not None:
            st.channel = (False, st.conv.resp_h, parts[2], port)


def _reply(st: _State, line: bytes) -> None:
    head = line[:3]
    code = int(head) if len(head) == 3 and head.isdigit() else 0
    if st.pending_reply:
        if code == st.pending_reply and len(line) > 3 and line[3:4] == b" ":
            st.pending_reply, cont = 0, False
            rest = line[3:]
        else:
            cont, code, rest = True, 0, line
    else:
        if code < 100:
            return  # a violation in Zeek; the line is dropped
        if len(line) > 3 and line[3:4] == b"-":
            st.pending_reply, cont, rest = code, True, line[4:]
        elif len(line) > 3 and line[3:4] != b" ":
            return
        else:
            cont, rest = False, line[3:]
    msg = rest.lstrip(b" \t").decode("latin-1")
    if not st.started:
        st.session()
    if cont and code == 0 and st.reply_code is not None and not _CONT_OK.match(msg):
        return
    st.cmdarg = st.best(code, msg)
    st.reply_code, st.reply_msg = code, msg
    if cont:
        return
    cmd = st.cmdarg.cmd
    if (code == 150 and cmd == "RETR") or (code == 213 and cmd == "SIZE"):
        numbers = _NUMBER.findall(msg)  # Zeek's extract_count(msg, F): the last number
        st.file_size = int(numbers[-1]) if numbers else None
    elif code in (227, 229) and cmd in ("PASV", "EPSV"):
        m = (
            _PASV.search(msg.encode("latin-1"))
            if code == 227
            else _EPSV.search(msg.encode("latin-1"))
        )
        if m and code == 227:
            if hp := _host_port(m):
                st.channel = (True, st.conv.orig_h, *hp)
        elif m and (port := _valid_port(m.group(2))) is not None:
            st.channel = (True, st.conv.orig_h, st.conv.resp_h, port)
    if (cmd, code) in _DIR_CMDS and not st.cmdarg.cwd_consumed:
        st.cmdarg.cwd_consumed = True
        if cmd == "CWD":
            st.cwd = _build_path(st.cwd, st.cmdarg.arg)
        elif cmd == "CDUP":
            st.cwd = _build_path(st.cwd, "/..")
        else:
            m = re.search(r'"([^"]*)"', msg)
            if m:
                st.cwd = m.group(1)
    if len(st.pending) > 1:
        st.pending.pop(st.cmdarg.seq, None)
        _message(st)


# First bytes a client's command can have, whitespace first (see FTPAnalyzer.opens).
_OPENS = frozenset(b" \t\n\r\x0b\x0cUAFSOuafso")


class FTPAnalyzer:
    """Zeek-compatible ftp.log producer (control channel only; data channels are other flows)."""

    service: ClassVar[str] = "ftp"
    table: ClassVar[str] = "ftp"
    schema: ClassVar[pa.Schema] = SCHEMA
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    prefixes: ClassVar[tuple[bytes, ...]] = (
        b"220",
        b"120",
        b"USER",
        b"AUTH",
        b"FEAT",
        b"SYST",
        b"OPTS",
    )
    ports: ClassVar[tuple[tuple[str, int], ...]] = (("tcp", 21), ("tcp", 2811))

    @staticmethod
    def opens(orig: int, resp: int) -> bool:
        """The router's gate before ``matches``: can it hold for prefixes whose first bytes are
        these (-1: that direction sent nothing yet)?
        A command after optional whitespace, or a greeting alone."""
        if orig < 0:
            return resp in (0x31, 0x32)  # "120", "220"
        return orig in _OPENS

    def matches(self, proto: str, orig_p: int, resp_p: int, orig: bytes, resp: bytes) -> bool:
        """A ``220``/``120`` greeting answered by USER (or AUTH/FEAT), or such a command alone."""
        if proto != "tcp":
            return False
        head = orig.lstrip()[:5].upper()
        cmd_ok = head[:4] in (b"USER", b"AUTH", b"FEAT", b"SYST", b"OPTS")
        greet_ok = resp[:3] in (b"220", b"120") and (not orig or cmd_ok)
        if not orig:
            return greet_ok and b"FTP" in resp.split(b"\n", 1)[0].upper()
        return cmd_ok and (not resp or greet_ok)

    def analyze(self, conv: Conversation) -> Analysis:
        st = _State(conv, ts=conv.ts)
        bufs = {True: bytearray(), False: bytearray()}
        try:
            for ts, o, data, _gap, _flags in segment_rows(conv.segments):
                st.ts = ts
                buf = bufs[o]
                if buf:  # a partial line waits for its end: join it once, only then
                    buf += data
                    if data.find(b"\n") < 0:
                        continue
                    data = bytes(buf)
                    buf.clear()
                handle = _request if o else _reply
                pos = 0
                while (nl := data.find(b"\n", pos)) >= 0:
                    line = data[pos:nl].rstrip(b"\r")
                    pos = nl + 1
                    if line:
                        handle(st, line)
                if pos < len(data):
                    buf += memoryview(data)[pos:]
            for seq in sorted(st.pending):  # connection end: flush what never got a final reply
                st.cmdarg = st.pending[seq]
                _message(st)
        except Exception:  # malformed input must never escape the analyser
            pass
        return Analysis(st.confirmed, st.records)


register(FTPAnalyzer())
