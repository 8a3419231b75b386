#!/usr/bin/env python3
"""A polled analyzer on a pty, written from the protocol documents alone (not foodgate's own
simulator): lz4000t, tl310 or dy723pc. foodgate's e2e tests attach to it as to a real device.

    python3 polled_device.py --protocol lz4000t --link DIR/tty --log DIR/requests.log
        [--days 3] [--per-day 2] [--bad-crc-once] [--silent-polls N] [--unplug-after N]

It holds `--per-day` records for each of the last `--days` local days (+08:00), the last of
each day failing (inhibition rate 62 %). `--link` is a symlink to the pty's device, re-made
when the device is "unplugged" (`--unplug-after N` requests: the pty is closed and a new one
made). Every request is logged as one line `OK <hex>` or `BAD <hex> <why>` (a frame whose
CRC, length or end byte is wrong), every reply as `SENT <hex>`; `--bad-crc-once` sends the
first record frame with a broken CRC (the host must ask for that day again);
`--silent-polls N` answers nothing to the first N comm tests (the device looks switched off).
"""
import argparse
import datetime as dt
import os
import pty
import select
import sys
import termios
import time
import tty

TZ = dt.timezone(dt.timedelta(hours=8))


def crc8(data):
    c = 0
    for b in data:
        c ^= b
        for _ in range(8):
            c = ((c << 1) ^ 0x31) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def frame(cmd, data):
    body = bytes([cmd]) + len(data).to_bytes(2, "little") + bytes(data)
    return b"\x7e" + body + bytes([crc8(body)]) + b"\xaa"


def records(days, per_day):
    today = dt.datetime.now(TZ).date()
    out = []
    for back in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=back)
        for k in range(per_day):
            when = dt.datetime(day.year, day.month, day.day, 9, 10 + k, 30)
            failing = k == per_day - 1
            out.append({"day": day, "when": when, "no": 100 * (days - back) + k + 1,
                        "rate": 62.0 if failing else 20.0 + k, "channel": k + 1})
    return out


class Device:
    def __init__(self, args):
        self.a = args
        self.recs = records(args.days, args.per_day)
        self.log = open(args.log, "a", buffering=1)
        self.bad_crc_left = 1 if args.bad_crc_once else 0
        self.silent_left = args.silent_polls
        self.requests = 0
        self.buf = b""
        self.open_pty()

    def open_pty(self):
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.slave_fd = slave
        name = os.ttyname(slave)
        tmp = self.a.link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(name, tmp)
        os.replace(tmp, self.a.link)
        if not getattr(self, "announced", False):
            print(f"pty: {name}", flush=True)
            self.announced = True
        else:
            self.log.write(f"PLUGGED {name}\n")

    def unplug(self):
        os.close(self.master)
        os.close(self.slave_fd)
        self.log.write("UNPLUGGED\n")
        time.sleep(0.5)
        self.open_pty()

    def send(self, data):
        self.log.write(f"SENT {data.hex()}\n")
        os.write(self.master, data)

    def day_recs(self, day):
        return [r for r in self.recs if r["day"] == day]

    # --- lz4000t / tl310 binary requests ------------------------------------------
    def take_frame(self):
        i = self.buf.find(b"\x7e")
        if i < 0:
            self.buf = b""
            return None
        self.buf = self.buf[i:]
        if len(self.buf) < 4:
            return None
        n = 4 + int.from_bytes(self.buf[2:4], "little") + 2
        if n > 64:
            self.log.write(f"BAD {self.buf[:8].hex()} length\n")
            self.buf = self.buf[1:]
            return None
        if len(self.buf) < n:
            return None
        f, self.buf = self.buf[:n], self.buf[n:]
        if f[-1] != 0xAA:
            self.log.write(f"BAD {f.hex()} end byte\n")
            return None
        if crc8(f[1:-2]) != f[-2]:
            self.log.write(f"BAD {f.hex()} crc\n")
            return None
        self.log.write(f"OK {f.hex()}\n")
        return f

    def record_crc(self, f):
        if self.bad_crc_left:
            self.bad_crc_left -= 1
            return f[:-2] + bytes([f[-2] ^ 0x5A]) + f[-1:]
        return f

    def lz(self, f):
        cmd, data = f[1], f[4:-2]
        if cmd == 0x00:
            if self.silent_left:
                self.silent_left -= 1
                return
            self.send(frame(0x01, [0x01, 0x00, 0x00]))
            return
        day = dt.date(2000 + data[0], data[1], data[2])
        recs = self.day_recs(day)
        if cmd == 0x12:
            self.send(frame(0x13, bytes(data[:3]) + len(recs).to_bytes(2, "little")))
        elif cmd == 0x10:
            for i, r in enumerate(recs, 1):
                w = r["when"]
                name = "白菜".encode("gbk").ljust(6, b"\0")
                body = (len(recs).to_bytes(2, "little") + i.to_bytes(2, "little")
                        + r["no"].to_bytes(2, "little") + name
                        + bytes([w.year - 2000, w.month, w.day, w.hour, w.minute, w.second])
                        + int(round(r["rate"] * 100)).to_bytes(2, "little"))
                self.send(self.record_crc(frame(0x11, body)))

    def tl(self, f):
        cmd, data = f[1], f[4:-2]
        if cmd == 0x01:
            if self.silent_left:
                self.silent_left -= 1
                return
            self.send(frame(0x02, [0xFF, 0x00, 0x00, 0x21]))
            return
        if cmd != 0x15:
            return
        if data[1:4] == b"\xff\xff\xff":
            recs = self.recs
        else:
            recs = self.day_recs(dt.date(2000 + data[1], data[2], data[3]))
        for i, r in enumerate(recs, 1):
            w = r["when"]
            rate = int(round(r["rate"] * 10))
            body = (b"\xff" + len(recs).to_bytes(2, "little") + i.to_bytes(2, "little")
                    + bytes([r["channel"], 0x00, w.year - 2000, w.month, w.day, w.hour,
                             w.minute, w.second])
                    + r["no"].to_bytes(2, "big") + b"\x00\x00" + rate.to_bytes(2, "little")
                    + bytes([0x01 if rate >= 500 else 0x02, 0x00]))
            self.send(self.record_crc(frame(0x16, body)))

    # --- dy723pc text requests -----------------------------------------------------
    def dy(self):
        i = self.buf.find(b"D")
        if i < 0:
            self.buf = b""
            return False
        self.buf = self.buf[i:]
        if len(self.buf) < 22:
            return False
        req, self.buf = self.buf[:22], self.buf[22:]
        try:
            text = req.decode("ascii")
            a = dt.date.fromisoformat(text[1:11])
            b = dt.date.fromisoformat(text[12:22])
            assert text[11] == "D"
        except (ValueError, AssertionError, UnicodeDecodeError):
            self.log.write(f"BAD {req.hex()} request\n")
            return True
        self.log.write(f"OK {req.hex()}\n")
        if self.silent_left:
            self.silent_left -= 1
            return True
        out = b""
        for r in self.recs:
            if a <= r["day"] <= b:
                w = r["when"].strftime("%Y-%m-%d %H:%M:%S")
                verdict = "不合格" if r["rate"] >= 50 else "合格"
                line = f"R,{r['no']:04d},{r['channel']},有机磷,0.512,{r['rate']:.1f},%,{verdict},{w},5A,\r\n"
                out += line.encode("gb18030")
        self.send(out + b"FINISH")
        return True

    def run(self):
        while True:
            r, _, _ = select.select([self.master], [], [], 0.5)
            if not r:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                time.sleep(0.1)
                continue
            self.buf += chunk
            while True:
                if self.a.protocol == "dy723pc":
                    if not self.dy():
                        break
                else:
                    f = self.take_frame()
                    if f is None:
                        if not self.buf or len(self.buf) < 4:
                            break
                        continue
                    (self.lz if self.a.protocol == "lz4000t" else self.tl)(f)
                self.requests += 1
                if self.a.unplug_after and self.requests == self.a.unplug_after:
                    self.unplug()
                    self.buf = b""
                    break


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", required=True, choices=["lz4000t", "tl310", "dy723pc"])
    p.add_argument("--link", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--per-day", type=int, default=2)
    p.add_argument("--bad-crc-once", action="store_true")
    p.add_argument("--silent-polls", type=int, default=0)
    p.add_argument("--unplug-after", type=int, default=0)
    Device(p.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
