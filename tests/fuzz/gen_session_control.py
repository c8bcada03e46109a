#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the fuzz_session corpus inputs for protocol version 2 (priorities,
# CANCEL of waiting, queued and unknown jobs, batch RJOBs well-formed and
# not, the batch flag where it does not belong; compressed jobs declaring
# 64 KiB and more, which the node inflates into shared buffers, well-formed
# and not, and enough of them to fill the session's budget), each for a
# plaintext and a TLS node, named by SHA-1 as libFuzzer names its inputs:
#   python3 tests/fuzz/gen_session_control.py tests/fuzz/corpus/session [NAME...]
# (NAMEs: only those inputs).  The node of fuzz_session has no workers: jobs
# wait, parked for their module or queued, which is what CANCEL is for.  The
# corpus keeps those that reach code the others do not (scripts/fuzz --merge
# decides).
import hashlib, os, struct, sys, zlib

out = sys.argv[1]
MOD = b"\x7fELF fuzz module for CANCEL and batches"
H = hashlib.sha256(MOD).digest()
def hdr(t, flags, id, n): return b"PP" + bytes([1, t]) + struct.pack(">HHQI", flags, 0, id, n)
def frame(t, p=b"", flags=0, id=0): return hdr(t, flags, id, len(p)) + p
def str16(s): return struct.pack(">H", len(s)) + s
def rjob(id, prio, arg, flags=0, sym=b"t_echo", timeout=0, h=H):
    p = h + str16(sym) + struct.pack(">I", timeout) + struct.pack(">i", prio) + arg
    return frame(21, p, flags, id)
def batch(items):
    return struct.pack(">I", len(items)) + b"".join(struct.pack(">I", len(i)) + i for i in items)
def module_frame(): return frame(24, H + struct.pack(">I", len(MOD)) + zlib.compress(MOD))
def module():
    # a job first: the node stores only a module it asked for (NEED)
    return rjob(100, 0, b"w") + module_frame()
def zjob(id, arg, flags=1, declared=None, mangle=None):
    # a compressed RJOB: u32 declared size, then the zlib stream
    p = H + str16(b"t_echo") + struct.pack(">I", 0) + struct.pack(">i", 0) + arg
    z = zlib.compress(p, 9)
    if mangle:
        z = mangle(z)
    return frame(21, struct.pack(">I", len(p) if declared is None else declared) + z, flags, id)
BIG = b"a" * 70000
CANCEL = 29
STATUS = 31
inputs = {
 # parked then queued jobs of three priorities, a batch, cancels of each kind
 "cancel_mix": rjob(1, 5, b"a") + rjob(2, -3, batch([b"x", b"yz"]), 2) + frame(CANCEL, id=1)
   + module() + rjob(3, 10, b"c") + rjob(4, 10, b"d") + rjob(5, 0, b"e") + frame(CANCEL, id=4)
   + frame(CANCEL, id=2) + frame(CANCEL, id=99) + frame(CANCEL, id=5) + frame(CANCEL, id=5),
 # jobs parked for a module nobody sends: cancelled while they wait for it
 "cancel_parked": rjob(30, 0, b"a", h=hashlib.sha256(b"never sent").digest())
   + rjob(31, 4, b"b", h=hashlib.sha256(b"never sent").digest()) + frame(CANCEL, id=31)
   + frame(CANCEL, id=30) + frame(CANCEL, id=30),
 "cancel_payload": module() + rjob(7, 0, b"a") + frame(CANCEL, b"\x00", id=7),
 "batch_ok": module() + rjob(8, 1, batch([b"", b"1", b"22" * 10]), 2) + rjob(9, 1, batch([]), 2),
 "batch_bad_len": module() + rjob(10, 0, struct.pack(">II", 1, 9) + b"abc", 2),
 "batch_bad_count": module() + rjob(11, 0, struct.pack(">I", 70000) + b"\0" * 16, 2),
 "batch_trailing": module() + rjob(12, 0, batch([b"q"]) + b"!", 2),
 "batch_flag_on_ping": frame(26, b"", 2, 5),
 "batch_flag_on_cancel": frame(CANCEL, b"", 2, 1),
 "prio_extremes": module() + b"".join(rjob(20 + i, p, b"p") for i, p in
   enumerate([0, -1, 2**31 - 1, -2**31, 7, 7, 0, -1])) + frame(CANCEL, id=22) + frame(CANCEL, id=23),
 # STATUS (31) once authenticated: answered, also with jobs parked and
 # queued; with a payload or a flag: a protocol error
 "status": frame(STATUS, id=1) + module() + rjob(3, 0, b"c") + frame(STATUS, id=2)
   + frame(STATUS, id=3),
 "status_payload": frame(STATUS, b"?", id=1),
 "status_flag": frame(STATUS, b"", 1, 1),
 # compressed jobs of 64 KiB and more: inflated into shared buffers
 "zjob_shm": module() + zjob(40, BIG) + frame(CANCEL, id=40) + zjob(41, BIG),
 "zjob_shm_batch": module() + zjob(42, batch([b"x" * 40000, b"y" * 40000]), 3),
 "zjob_shm_parked": zjob(43, BIG),
 "zjob_declares_more": module() + zjob(44, BIG, declared=70100),
 "zjob_declares_less": module() + zjob(45, BIG, declared=66000),
 "zjob_corrupt": module() + zjob(46, BIG, mangle=lambda z: z[:40] + bytes([z[40] ^ 0xFF]) + z[41:]),
 "zjob_truncated": module() + zjob(47, BIG, mangle=lambda z: z[:-9]),
 "zjob_trailing": module() + zjob(48, BIG, mangle=lambda z: z + b"\0"),
 "zjob_over_limit": zjob(49, BIG, declared=(1 << 20) + 1025),
 # three of ~1 MB fill the 2 MiB session budget: the third waits in the
 # backlog until a cancel makes room
 "zjob_backlog": module() + zjob(50, b"\0" * 1000000) + zjob(51, b"\0" * 1000000)
   + zjob(52, b"\0" * 1000000) + zjob(53, b"b") + frame(CANCEL, id=50) + frame(STATUS, id=9),
}
# Before the inner handshake (first byte 0x00 plaintext, 0x02 TLS): STATUS
# is a frame out of place, answered by nothing but the refusal.
preauth = {"status_first": frame(STATUS, id=1)}
# Large frames (first byte 0x09 plaintext, 0x0B TLS: bit 3): a header and
# the first 64 bytes of its body, which fuzz_session completes with zeros --
# frames above 64 KiB, received into shared buffers.
def bigjob(id, n, flags=0, arg_head=b""):
    head = H + str16(b"t_echo") + struct.pack(">I", 0) + struct.pack(">i", 3) + arg_head
    return hdr(21, flags, id, n) + head + b"\0" * (64 - len(head))
large = {
 "big_job_then_module": bigjob(60, 70000) + module_frame()
   + frame(STATUS, id=1) + frame(CANCEL, id=60),
 "big_job_parked_cancel": bigjob(61, 200000) + frame(CANCEL, id=61) + frame(CANCEL, id=61),
 "big_batch_job": bigjob(62, 90000, 2, struct.pack(">II", 1, 90000 - 56))
   + module_frame(),
 "big_job_bad_batch": bigjob(63, 90000, 2, struct.pack(">II", 2, 5)),
 "big_ping": hdr(26, 0, 7, 65600) + b"\0" * 64 + frame(26, id=8),
 "big_job_max": bigjob(64, (1 << 20) + 1024) + module_frame(),
}
only = sys.argv[2:]
for name, body in list(inputs.items()) + list(preauth.items()) + list(large.items()):
    if only and name not in only:
        continue
    for first in ((0x00, 0x02) if name in preauth else (0x09, 0x0B) if name in large
                  else (0x01, 0x03)):
        data = bytes([first]) + body
        fn = hashlib.sha1(data).hexdigest()
        open(os.path.join(out, fn), "wb").write(data)
        print(fn, name, hex(first), len(data))
